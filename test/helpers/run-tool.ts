import { spawn } from 'node:child_process';

export interface ToolResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Debian's python3-libnbd lives under /usr/lib/python3; a python3 earlier on
 * PATH (pyenv) cannot import it, so the tools run with /usr/bin first.
 */
export const TOOL_ENV: NodeJS.ProcessEnv = { ...process.env, PATH: `/usr/bin:/bin:/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

/** Runs a real client program to completion, with a hard time limit. */
export function runTool(
  command: string,
  args: readonly string[],
  options: { timeoutMs?: number; input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: options.env ?? TOOL_ENV, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message} (install the Debian package that provides it; see .ci/run)`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(options.input);
  });
}

/** Like runTool, but a non-zero exit is an error that shows what the tool said. */
export async function mustRun(command: string, args: readonly string[], options?: Parameters<typeof runTool>[2]): Promise<string> {
  const result = await runTool(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.code ?? result.signal}\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}

/** Runs a Python script inside nbdsh (libnbd's shell): `h` is a handle, `nbd` the module. */
export function nbdsh(uri: string, script: string, timeoutMs = 60_000): Promise<ToolResult> {
  return runTool('nbdsh', ['-u', uri, '-c', script], { timeoutMs });
}
