/** Child processes: run a tool to completion and time it, start a server, wait for its socket, stop it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { TOOL_ENV } from './config.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion; rejects with its stderr when it exits non-zero. */
export function run(command: string, args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolve({ stdout, stderr, seconds });
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.trim()}`));
    });
  });
}

/** A long-running server; its stderr is kept (the last few KiB) to explain an early exit. */
export interface Server {
  readonly child: ChildProcess;
  readonly socket: string;
  log(): string;
}

export function startServer(command: string, args: string[], socket: string): Server {
  const child = spawn(command, args, { env: TOOL_ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr?.on('data', (c: Buffer) => {
    tail = (tail + c.toString()).slice(-8192);
  });
  return { child, socket, log: () => tail };
}

export async function waitForSocket(server: Server, path = server.socket): Promise<void> {
  for (let i = 0; i < 400 && !existsSync(path); i++) {
    if (server.child.exitCode !== null) throw new Error(`server exited with ${server.child.exitCode} before listening: ${server.log()}`);
    await sleep(25);
  }
  if (!existsSync(path)) throw new Error(`no socket at ${path}: ${server.log()}`);
  await sleep(100);
}

export async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    const exited = new Promise((r) => server.child.once('exit', r));
    server.child.kill('SIGTERM');
    await exited;
  }
  rmSync(server.socket, { force: true });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
