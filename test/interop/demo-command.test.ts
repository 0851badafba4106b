import { expect, it } from 'vitest';
import { mustRun } from '../helpers/run-tool.js';
import { useCleanups } from '../helpers/cleanups.js';
import { scratchDir } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

const cleanup = useCleanups();

/** What `npm start` runs (`nbd-remapper demo`), on a free port instead of 10809 and with its own control socket. */
it('demo creates the demo disk on first run and serves it as source and destination', async () => {
  const dir = scratchDir('nbd-remapper-demo-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('cache/demo-disk.img');
  const server = await startServerProcess(['demo', '--disk', disk, '--listen', '127.0.0.1:0']);
  cleanup(async () => {
    await server.stop();
  });
  expect(server.stdout()).toMatch(/^created demo disk /m);
  expect(server.stdout()).toMatch(/^ready/m);
  const listed = JSON.parse(await mustRun('nbdinfo', ['--list', '--json', server.uri('source')])) as { exports: Array<{ 'export-name': string; 'export-size': number }> };
  expect(listed.exports.map((e) => e['export-name'])).toEqual(['source', 'destination']);
  expect(listed.exports[0]['export-size']).toBe(256 * 1024 * 1024);
  // The demo disk carries a partition table: the MBR signature is there through the export.
  const mbr = await mustRun('nbdsh', ['-u', server.uri('source'), '-c', 'print(h.pread(2, 510).hex())']);
  expect(mbr.trim()).toBe('55aa');
  expect(await server.stop()).toBe(0);

  const again = await startServerProcess(['demo', '--disk', disk, '--listen', '127.0.0.1:0']);
  cleanup(async () => {
    await again.stop();
  });
  expect(again.stdout()).toMatch(/^using demo disk /m);
  expect(again.stdout()).toMatch(/state: .*\(resumed\)/);
});
