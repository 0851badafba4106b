import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Every server and CLI the tests start lists its migrations in a registry of
 * this run's own (MigrationRegistry), never in the user's or root's: test
 * images come and go by the hundred, and a run must not see another's.
 */
export default function setup(): () => void {
  const directory = mkdtempSync(join(tmpdir(), 'nbd-remapper-test-registry-'));
  process.env.NBD_REMAPPER_REGISTRY = directory;
  return () => rmSync(directory, { recursive: true, force: true });
}
