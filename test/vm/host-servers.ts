/**
 * NBD servers on the host for the VM tests to attach: the product's own CLI,
 * or qemu-nbd as a stand-in while the product cannot serve yet.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CLI, startServerProcess } from '../helpers/server-process.js';
import type { HostTarget } from './vm.js';

export interface HostNbdServer {
  /** What is serving, for the test log. */
  description: string;
  /** Where the guest's forward should lead. */
  target: HostTarget;
  /** Stops the server after it has flushed; resolves with its exit code. */
  stop(): Promise<number | null>;
}

/**
 * The product's server when it is built (dist/src/cli/main.js), qemu-nbd
 * otherwise. VM_NBD_SERVER=ours|qemu-nbd forces one, e.g. to tell a harness
 * problem from a server problem.
 */
export function chooseServerKind(): 'ours' | 'qemu-nbd' {
  const forced = process.env.VM_NBD_SERVER;
  if (forced === 'ours' || forced === 'qemu-nbd') return forced;
  if (forced) throw new Error(`VM_NBD_SERVER='${forced}' must be 'ours' or 'qemu-nbd'`);
  return existsSync(CLI) ? 'ours' : 'qemu-nbd';
}

/** `nbd-remapper serve --disk DISK --listen 127.0.0.1:0`; the guest reaches it over TCP. */
export async function startOurServer(disk: string, moreArgs: readonly string[] = []): Promise<HostNbdServer> {
  const server = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0', ...moreArgs]);
  const uri = server.uri('source', 'tcp');
  const port = /^nbds?:\/\/127\.0\.0\.1:(\d+)\//.exec(uri)?.[1];
  if (!port) {
    await server.stop();
    throw new Error(`cannot read a 127.0.0.1 port from the server's URI ${uri}`);
  }
  return {
    description: `nbd-remapper serve (${uri})`,
    target: `tcp:127.0.0.1:${Number(port)}`,
    stop: () => server.stop(),
  };
}

/** qemu-nbd serving DISK as export "source" on a unix socket; the guest reaches it through socat. */
export async function startQemuNbd(disk: string, socket: string): Promise<HostNbdServer> {
  const child = spawn('qemu-nbd', ['-f', 'raw', '-x', 'source', '--persistent', `--socket=${socket}`, disk], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const failedToStart = new Promise<never>((_, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run qemu-nbd: ${err.message} (install qemu-utils)`)));
    void exited.then((code) => reject(new Error(`qemu-nbd exited ${code} before listening:\n${stderr}`)));
  });
  // qemu-nbd says nothing when ready; the socket appearing is the sign. 10 s at most.
  const listening = (async () => {
    for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(socket)) throw new Error(`qemu-nbd did not create ${socket} within 10 s:\n${stderr}`);
  })();
  try {
    await Promise.race([listening, failedToStart]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  failedToStart.catch(() => undefined);
  return {
    description: `qemu-nbd stand-in (unix:${socket})`,
    target: `unix:${socket}`,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}
