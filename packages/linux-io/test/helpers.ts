import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, expect } from 'vitest';
import { evictFromPageCache } from '../../../test/helpers/page-cache.js';

/** What a test opened, undone after it (newest first). */
export const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** Beside the package, not in the system's temporary directory: that may be a tmpfs, which refuses RWF_NOWAIT and has no page cache to evict. */
const SCRATCH = fileURLToPath(new URL('../.test-scratch/', import.meta.url));

/** A file of random bytes, written back and then dropped from the page cache. */
export function evictedFile(size: number): { path: string; fd: number; data: Buffer } {
  mkdirSync(SCRATCH, { recursive: true });
  const dir = mkdtempSync(join(SCRATCH, 'linux-io-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'f.bin');
  const data = randomBytes(size);
  writeFileSync(path, data);
  const fd = openSync(path, 'r');
  cleanups.push(() => closeSync(fd));
  evictFromPageCache(path);
  return { path, fd, data };
}

export function fdOf(socket: net.Socket): number {
  const fd = (socket as unknown as { _handle: { fd: number } })._handle.fd;
  expect(fd).toBeGreaterThanOrEqual(0);
  return fd;
}

/** A connected unix socket pair through a listener; `accepted` is the server's side. */
export async function connectedUnixPair(): Promise<{ client: net.Socket; accepted: net.Socket }> {
  const dir = mkdtempSync(join(tmpdir(), 'linux-io-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 's.sock');
  const server = net.createServer();
  const acceptedP = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  cleanups.push(() => server.close());
  const client = net.connect(path);
  cleanups.push(() => client.destroy());
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const accepted = await acceptedP;
  cleanups.push(() => accepted.destroy());
  return { client, accepted };
}
