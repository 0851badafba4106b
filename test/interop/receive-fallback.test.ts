import { readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import type { Logger } from '../../src/log/logger.js';
import { PlainDiskView } from '../../src/remap/plain-disk-view.js';
import { ExportList } from '../../src/server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer } from '../../src/server/nbd-server.js';
import { Disk } from '../../src/store/disk.js';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';

/**
 * The server receives WRITE payloads in place by moving each accepted
 * socket's handle into a Socket with `onread` (src/net/adopt-accepted-socket.ts),
 * which relies on Node internals; where they are missing it keeps the accepted
 * socket and gathers payloads from its 'data' chunks. Every other test runs
 * the in-place path, so this one forces the fallback (`receiveInPlace: false`)
 * and drives it with real clients: large payloads split across many chunks,
 * both directions byte-exact, and a client's DISC freeing its place.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

function recordingLogger(lines: string[]): Logger {
  const logger: Logger = {
    debug: (m) => void lines.push(m),
    info: (m) => void lines.push(m),
    warn: (m) => void lines.push(m),
    error: (m) => void lines.push(m),
    child: () => logger,
  };
  return logger;
}

it("serves real clients through the 'data' fallback: writes and reads byte-exact, DISC frees the place", async () => {
  const dir = scratchDir('nbd-remapper-fallback-');
  cleanup(() => dir.cleanup());
  const size = 64 * MiB;
  const image = dir.file('disk.img');
  writeFileSync(image, Buffer.alloc(size));
  const disk = await Disk.open(image, { readOnly: false });
  cleanup(() => disk.close());
  const lines: string[] = [];
  // nbdcopy's default is four connections (multi-conn): with four places, one not freed after its client left refuses the next copy.
  const server = new NbdServer(
    new ExportList([new PlainDiskView('source', 'test disk', disk, false)]),
    { ...DEFAULT_SERVER_OPTIONS, maxConnections: 4, receiveInPlace: false },
    recordingLogger(lines),
  );
  const socket = dir.file('nbd.sock');
  await server.listen({ kind: 'unix', path: socket });
  cleanup(() => server.close());
  const uri = `nbd+unix:///source?socket=${socket}`;

  const input = dir.file('in.bin');
  const data = randomBytes(size);
  writeFileSync(input, data);
  // 4 MiB requests: each payload arrives in dozens of 'data' chunks.
  await mustRun('nbdcopy', ['-C', '1', '--request-size=4194304', input, uri]);
  await mustRun('nbdcopy', ['--flush', input, uri]);
  const output = dir.file('out.bin');
  await mustRun('nbdcopy', ['-C', '1', '--request-size=4194304', uri, output]);
  expect(readFileSync(output).equals(data)).toBe(true);
  expect(readFileSync(image).equals(data)).toBe(true);

  // nbdinfo ends with DISC: five in a row need the places of those before them freed.
  for (let i = 0; i < 5; i++) expect(JSON.parse(await mustRun('nbdinfo', ['--json', uri])).exports[0]['export-size']).toBe(size);

  // The fallback was really taken (the test means nothing if the in-place path ran).
  const connected = lines.filter((l) => l.startsWith('client connected from'));
  expect(connected.length).toBeGreaterThanOrEqual(8);
  for (const line of connected) expect(line).toContain("payloads gathered from 'data' chunks");
  expect(lines.filter((l) => l.includes('refusing client'))).toEqual([]);
});
