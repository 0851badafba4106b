import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  /** Everything printed so far. */
  stdout(): string;
  stderr(): string;
  /** NBD URI of an export on the first endpoint printed (TCP or unix). */
  uri(exportName: string, kind?: 'tcp' | 'unix'): string;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Starts the real CLI (`nbd-remapper <args>`) from the build and waits until it
 * says it is ready. Rejects with everything it printed if it exits first.
 */
export function startServerProcess(args: readonly string[], timeoutMs = 20_000, launcher: readonly string[] = [], cli = CLI): Promise<ServerProcess> {
  // `launcher`: a command that runs the server, e.g. prlimit with a resource limit (it must exec it: signals go to its pid).
  // `cli`: another build of main.js (one without the native addon).
  const command = [...launcher, process.execPath, cli, ...withPrivateControl(args)];
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const handle: ServerProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    uri(exportName, kind) {
      const uris = [...out.matchAll(/^\s+(nbds?(?:\+unix)?:\/\/\S+)$/gm)].map((m) => m[1]);
      const found = uris.find((u) => {
        const matchesExport = u.includes(`/${exportName}`) && (u.endsWith(`/${exportName}`) || u.includes(`/${exportName}?`));
        const matchesKind = kind === undefined || (kind === 'unix') === /^nbds?\+unix:/.test(u);
        return matchesExport && matchesKind;
      });
      if (!found) throw new Error(`server printed no ${kind ?? ''} URI for export ${exportName}:\n${out}`);
      return found;
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
    exited,
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server not ready within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    const onData = (): void => {
      if (/^ready/m.test(out)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(handle);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready\nstdout:\n${out}\nstderr:\n${err}`));
    });
  });
}

/**
 * Tests run servers side by side: each `serve` without --control gets its own
 * control socket instead of the shared default, which the second would find taken.
 */
function withPrivateControl(args: readonly string[]): readonly string[] {
  if ((args[0] !== 'serve' && args[0] !== 'demo') || args.includes('--control') || args.includes('--read-only')) return args;
  return [...args, '--control', join(tmpdir(), `nbd-remapper-test-${randomBytes(6).toString('hex')}.sock`)];
}
