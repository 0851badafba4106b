import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { runTool } from '../helpers/run-tool.js';
import { expectHeldDataKept, heldDataDisk, heldPattern } from '../helpers/held-data-disk.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Every stop signal stops the server cleanly: requests in flight answered,
 * data held in RAM (written, never flushed) carried into the state, exit 0.
 * SIGHUP too — the signal of a terminal that closes under a server run in
 * the foreground, which by default would kill it like a crash.
 */
const cleanup = useCleanups();

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  it(`${signal} stops cleanly and keeps the data held in RAM`, async () => {
    const { disk, args: argsFor } = heldDataDisk('nbd-remapper-signals-', cleanup);
    const control = `${disk}.control.sock`;
    const args = argsFor(control);
    const server = await startServerProcess(args);
    cleanup(() => server.stop('SIGKILL'));
    expect((await runTool(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 })).code).toBe(0);
    await nbdshScript(server.uri('destination'), `h.pwrite(${heldPattern(signal.length)}, 0)`);

    expect(await server.stop(signal)).toBe(0);
    expect(server.stderr()).toContain(`${signal}: finishing requests in flight, flushing, exiting`);

    await expectHeldDataKept(args, signal.length, cleanup);
  }, 60_000);
}
