import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { mustRun, runTool, TOOL_ENV } from '../helpers/run-tool.js';
import { expectHeldDataKept, heldDataDisk, heldPattern } from '../helpers/held-data-disk.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * The server outlives the reader of its output. A log pipe whose reader dies
 * (EPIPE) or a terminal that hangs up (SIGHUP, then EIO on every write) must
 * neither kill it in the middle of a migration nor turn its clean stop into a
 * crash: RAM-held data is carried into the state and the exit status is 0.
 */
const cleanup = useCleanups();
const IN_TERMINAL = fileURLToPath(new URL('../helpers/in-terminal.py', import.meta.url));

it('a log pipe whose reader goes away neither stops the server nor its clean stop', async () => {
  const { args: argsFor, disk } = heldDataDisk('nbd-remapper-epipe-', cleanup);
  const args = argsFor(`${disk}.control.sock`);
  const server = await startServerProcess(args);
  cleanup(() => server.stop('SIGKILL'));
  // The reader of the server's log goes away; the next line the server logs meets EPIPE.
  server.child.stderr!.destroy();
  await mustRun(process.execPath, [CLI, 'seal', '--control', `${disk}.control.sock`], { timeoutMs: 30_000 });
  await nbdshScript(server.uri('destination'), `h.pwrite(${heldPattern(1)}, 0)`);
  const status = JSON.parse(await mustRun(process.execPath, [CLI, 'status', '--json', '--control', `${disk}.control.sock`])) as { phase: string };
  expect(status.phase).toBe('sealed');
  expect(server.stdout()).toMatch(/warn {2}stderr is gone \(EPIPE\): the server goes on serving without it/);

  expect(await server.stop('SIGTERM')).toBe(0);
  await expectHeldDataKept(args, 1, cleanup);
}, 60_000);

/** The server on a terminal of its own (test/helpers/in-terminal.py), driven like a person's terminal. */
async function onTerminal(args: readonly string[]) {
  const terminal = spawn('python3', [IN_TERMINAL, process.execPath, CLI, ...args], { env: TOOL_ENV, stdio: ['pipe', 'pipe', 'pipe'] });
  cleanup(() => {
    terminal.kill('SIGKILL');
  });
  let shown = '';
  terminal.stdout.on('data', (c: Buffer) => (shown += c.toString()));
  terminal.stderr.on('data', (c: Buffer) => (shown += c.toString()));
  const until = async (marker: RegExp): Promise<RegExpMatchArray> => {
    for (let i = 0; i < 300; i++) {
      const found = shown.match(marker);
      if (found) return found;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no ${marker} within 30 s; the terminal showed:\n${shown.slice(-4000)}`);
  };
  await until(/^@@READY$/m);
  return {
    until,
    shown: () => shown,
    tell: (command: 'pause' | 'resume' | 'hangup') => terminal.stdin.write(`${command}\n`),
  };
}

it('a terminal that hangs up stops the server cleanly, exit status 0', async () => {
  const { args: argsFor, disk } = heldDataDisk('nbd-remapper-hangup-', cleanup);
  const control = `${disk}.control.sock`;
  const args = argsFor(control);
  const terminal = await onTerminal(args);
  await mustRun(process.execPath, [CLI, 'seal', '--control', control], { timeoutMs: 30_000 });
  const uri = `nbd+unix:///destination?socket=${args[args.indexOf('--socket') + 1]}`;
  await nbdshScript(uri, `h.pwrite(${heldPattern(2)}, 0)`);

  terminal.tell('hangup');
  const [, code] = await terminal.until(/^@@EXIT (\S+)$/m);
  // Before: Node's exit aborted on the hung-up terminal's tcsetattr (SIGABRT, then SIGSEGV in the abort).
  expect(code, terminal.shown()).toBe('0');
  expect((await runTool('test', ['-e', control])).code, 'the control socket is removed by the clean stop').not.toBe(0);
  await expectHeldDataKept(args, 2, cleanup);
}, 60_000);

it('a terminal that stops reading (Ctrl-S, a stalled ssh session) does not stop the server: its lines are dropped, then counted', async () => {
  const { args: argsFor, disk } = heldDataDisk('nbd-remapper-stalled-tty-', cleanup);
  const args = [...argsFor(`${disk}.control.sock`), '--verbose'];
  const socket = args[args.indexOf('--socket') + 1];
  const terminal = await onTerminal(args);
  terminal.tell('pause');
  await terminal.until(/^@@PAUSED$/m);
  // Each connection logs a few lines (~90 bytes each): 3000 connections are far more than the terminal's buffer holds.
  // Before, the server's first write to the full terminal blocked its event loop: the connections stopped
  // being answered (76 went through in a try by hand), and this ran into its time limit.
  const connections = 3000;
  const script = [
    'import nbd',
    `for i in range(${connections}):`,
    '    c = nbd.NBD()',
    `    c.connect_uri(${JSON.stringify(`nbd+unix:///source?socket=${socket}`)})`,
    '    c.shutdown()',
    'print("connected", i + 1)',
  ].join('\n');
  const loop = await runTool('nbdsh', ['-c', script], { timeoutMs: 60_000 });
  expect(loop.stdout + loop.stderr).toContain(`connected ${connections}`);

  terminal.tell('resume');
  await terminal.until(/^@@RESUMED$/m);
  // The next line that finds room says how many were dropped.
  await mustRun('nbdinfo', ['--size', `nbd+unix:///source?socket=${socket}`]);
  const [, dropped] = await terminal.until(/warn {2}(\d+) line\(s\) of stderr dropped: its reader \(a terminal, a pipe\) did not take them/);
  expect(Number(dropped)).toBeGreaterThan(0);

  terminal.tell('hangup');
  expect((await terminal.until(/^@@EXIT (\S+)$/m))[1]).toBe('0');
}, 90_000);
