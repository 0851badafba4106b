import { writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Every stop signal stops the server cleanly: requests in flight answered,
 * data held in RAM (written, never flushed) carried into the state, exit 0.
 * SIGHUP too — the signal of a terminal that closes under a server run in
 * the foreground, which by default would kill it like a crash.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  it(`${signal} stops cleanly and keeps the data held in RAM`, async () => {
    const dir = scratchDir('nbd-remapper-signals-');
    cleanup(() => dir.cleanup());
    const disk = dir.file('disk.img');
    randomImage(disk, 4 * MiB);
    // The destination is the disk shifted by 1 MiB: with the source unread, what is written stays in RAM.
    const mapFile = dir.file('map.json');
    writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: 3 * MiB, diskOffset: MiB }] }));
    const control = dir.file('control.sock');
    const args = ['serve', '--disk', disk, '--map', mapFile, '--socket', dir.file('nbd.sock'), '--control', control];
    const server = await startServerProcess(args);
    cleanup(() => server.stop('SIGKILL'));
    expect((await runTool(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 })).code).toBe(0);
    const data = `bytes((i * 7 + ${signal.length}) & 0xff for i in range(${MiB}))`;
    await nbdshScript(server.uri('destination'), `h.pwrite(${data}, 0)`);

    expect(await server.stop(signal)).toBe(0);
    expect(server.stderr()).toContain(`${signal}: finishing requests in flight, flushing, exiting`);

    const again = await startServerProcess(args);
    cleanup(() => again.stop('SIGKILL'));
    expect(again.stderr()).toMatch(/resumed the migration .*256 destination block\(s\) held \(256 in RAM from the state/);
    await nbdshScript(again.uri('destination'), `assert h.pread(${MiB}, 0) == ${data}, "held data kept by the clean stop"`);
    expect(await again.stop()).toBe(0);
  }, 60_000);
}
