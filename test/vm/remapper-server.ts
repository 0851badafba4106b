/**
 * The product's server as the migration scenarios drive it: `nbd-remapper serve`
 * with a map, a cache size and a control socket; its control plane (HTTP/JSON on
 * a unix socket); a status poller that keeps the peaks; SIGKILL and restart on
 * the same port (and state); finish, online (streaming) or offline.
 */
import { request } from 'node:http';
import { createServer, type Server } from 'node:http';
import { rmSync } from 'node:fs';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { runTool, type ToolResult } from '../helpers/run-tool.js';

/** What `GET /status` returns: the engine's own type, so a renamed field breaks the build, not the run. */
import type { RemapStatus } from '../../src/remap/index.js';
export type { RemapStatus };

export interface RemapperOptions {
  disk: string;
  control: string;
  map?: string;
  cache?: string;
  revisitCache?: string;
  state?: string;
  safe?: boolean;
  extraArgs?: readonly string[];
}

export interface Peaks {
  heldInRamBytes: number;
  cacheBytes: number;
  spilled: number;
  atRisk: number;
  enospc: number;
  samples: number;
}

/** HTTP over the control socket; resolves with the status code and the whole body. */
export function controlRequest(socketPath: string, method: 'GET' | 'POST', path: string, onLine?: (line: string) => void): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: method === 'POST' ? { 'content-length': '0' } : {} }, (res) => {
      let body = '';
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (onLine) {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            onLine(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
          }
        }
      });
      res.on('end', () => {
        if (onLine && pending) onLine(pending);
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`control ${method} ${path}: response aborted after ${JSON.stringify(body.slice(-500))}`)));
    });
    req.on('error', reject);
    req.end();
  });
}

export class RemapperServer {
  /** Output of every incarnation, in order, with a banner between them. */
  private logs: string[] = [];
  private poller: NodeJS.Timeout | undefined;
  readonly peaks: Peaks = { heldInRamBytes: 0, cacheBytes: 0, spilled: 0, atRisk: 0, enospc: 0, samples: 0 };
  restarts = 0;

  private constructor(
    readonly options: RemapperOptions,
    private proc: ServerProcess,
    readonly port: number,
  ) {}

  static async start(options: RemapperOptions): Promise<RemapperServer> {
    const proc = await startServerProcess(RemapperServer.args(options, 0));
    const port = Number(/^nbd:\/\/127\.0\.0\.1:(\d+)\//.exec(proc.uri('destination', 'tcp'))?.[1]);
    if (!port) {
      await proc.stop('SIGKILL');
      throw new Error(`no 127.0.0.1 port in the server's output:\n${proc.stdout()}`);
    }
    return new RemapperServer(options, proc, port);
  }

  private static args(o: RemapperOptions, port: number): string[] {
    const args = ['serve', '--disk', o.disk, '--listen', `127.0.0.1:${port}`, '--control', o.control];
    if (o.map) args.push('--map', o.map);
    if (o.cache) args.push('--cache', o.cache);
    if (o.revisitCache) args.push('--revisit-cache', o.revisitCache);
    if (o.state) args.push('--state', o.state);
    if (o.safe) args.push('--safe');
    args.push(...(o.extraArgs ?? []));
    return args;
  }

  get description(): string {
    return `nbd-remapper ${RemapperServer.args(this.options, this.port).join(' ')}`;
  }

  /** The `blkdiscard -o OFFSET -l LENGTH` ranges the server's start-up hint offered (space outside the old partitions). */
  discardHint(): Array<{ offset: number; length: number }> {
    return [...this.proc.stdout().matchAll(/^ {2}blkdiscard -o (\d+) -l (\d+) \S+$/gm)].map((m) => ({ offset: Number(m[1]), length: Number(m[2]) }));
  }

  /** Everything the server printed, all incarnations. */
  log(): string {
    return [...this.logs, `${this.proc.stdout()}${this.proc.stderr()}`].join('\n----- server restarted -----\n');
  }

  async status(): Promise<RemapStatus> {
    const { status, body } = await controlRequest(this.options.control, 'GET', '/status');
    if (status !== 200) throw new Error(`GET /status answered ${status}: ${body}`);
    const s = JSON.parse(body) as RemapStatus;
    this.note(s);
    return s;
  }

  private note(s: RemapStatus): void {
    const p = this.peaks;
    p.samples++;
    p.heldInRamBytes = Math.max(p.heldInRamBytes, s.heldInRamBytes ?? 0);
    p.cacheBytes = Math.max(p.cacheBytes, s.cacheBytes ?? 0);
    p.spilled = Math.max(p.spilled, s.spilled ?? 0);
    p.atRisk = Math.max(p.atRisk, s.atRisk ?? 0);
    p.enospc = Math.max(p.enospc, s.enospc ?? 0);
  }

  /** Samples /status every intervalMs for the peaks (a dead server is skipped). */
  startPolling(intervalMs = 250): void {
    this.stopPolling();
    let busy = false;
    this.poller = setInterval(() => {
      if (busy) return;
      busy = true;
      this.status()
        .catch(() => undefined)
        .finally(() => (busy = false));
    }, intervalMs);
  }

  stopPolling(): void {
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
  }

  /** SIGKILL: no shutdown path runs. */
  async kill(): Promise<number | null> {
    return this.proc.stop('SIGKILL');
  }

  /** Starts it again on the same port, control socket and state. */
  async restart(): Promise<void> {
    if (this.proc.child.exitCode === null && this.proc.child.signalCode === null) throw new Error('restart: the server is still running');
    this.logs.push(`${this.proc.stdout()}${this.proc.stderr()}`);
    // A SIGKILLed server leaves its socket file behind.
    rmSync(this.options.control, { force: true });
    this.proc = await startServerProcess(RemapperServer.args(this.options, this.port));
    this.restarts++;
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    this.stopPolling();
    return this.proc.stop('SIGTERM');
  }

  get exited(): Promise<number | null> {
    return this.proc.exited;
  }

  /** `nbd-remapper finish --control SOCK` (the CLI, plain lines since it is not a terminal). */
  finishWithCli(timeoutMs = 300_000): Promise<ToolResult> {
    return runTool(process.execPath, [CLI, 'finish', '--control', this.options.control], { timeoutMs });
  }
}

/** `nbd-remapper finish --disk IMG --state PATH`: the offline resume (no server). */
export function finishOffline(disk: string, state: string, extra: readonly string[] = [], timeoutMs = 300_000): Promise<ToolResult> {
  return runTool(process.execPath, [CLI, 'finish', '--disk', disk, '--state', state, ...extra], { timeoutMs });
}

/** `nbd-remapper serve --disk IMG --read-only`: a plain view of the final disk for the verify VM. */
export async function startPlainServer(disk: string, control: string): Promise<{ port: number; stop(): Promise<number | null>; proc: ServerProcess }> {
  const proc = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0', '--read-only', '--control', control]);
  const port = Number(/^nbd:\/\/127\.0\.0\.1:(\d+)\//.exec(proc.uri('source', 'tcp'))?.[1]);
  if (!port) {
    await proc.stop('SIGKILL');
    throw new Error(`no 127.0.0.1 port in the server's output:\n${proc.stdout()}`);
  }
  return { port, proc, stop: () => proc.stop() };
}

/**
 * A tiny HTTP service on a unix socket that the guest calls (through a forward) at
 * the point where it wants something done on the host, e.g. GET /crash: SIGKILL the
 * server and start it again. The handler's result is the response body.
 */
export async function startHostHelper(socketPath: string, routes: Record<string, () => Promise<unknown>>): Promise<{ close(): Promise<void>; calls: string[] }> {
  rmSync(socketPath, { force: true });
  const calls: string[] = [];
  const server: Server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    calls.push(req.url ?? '');
    if (!route) {
      res.writeHead(404).end(`no route ${req.url}\n`);
      return;
    }
    route().then(
      (body) => res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`),
      (err: unknown) => res.writeHead(500).end(`${err instanceof Error ? err.stack : String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    calls,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
