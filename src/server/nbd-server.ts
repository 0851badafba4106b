import { existsSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { LogThrottle } from '../log/log-throttle.js';
import type { Logger } from '../log/logger.js';
import { adoptAcceptedSocket } from '../net/adopt-accepted-socket.js';
import { widenUnixSendBuffer } from '../net/unix-send-buffer.js';
import { SocketReader } from '../net/socket-reader.js';
import { BufferPool } from './buffer-pool.js';
import { Connection } from './connection.js';
import type { ExportTable } from './export-table.js';
import { ListenError } from './listen-error.js';
import { MemoryBudget } from './memory-budget.js';
import { DEFAULT_MAX_BUFFERED_BYTES, type Endpoint, type ServerOptions } from './server-options.js';
import { unixSocketPathTooLong } from '../net/unix-socket-path.js';

export { DEFAULT_SERVER_OPTIONS, type Endpoint, type ServerOptions } from './server-options.js';

/** Sockets and their connections. Knows exports only through the ExportTable. */
export class NbdServer {
  private readonly listeners: net.Server[] = [];
  private readonly connections = new Set<Connection>();
  private nextId = 1;
  private stopping = false;
  /** Shared by all connections: idle read buffers, bounded like the in-flight bytes of one connection. */
  private readonly buffers = new BufferPool(64 * 1024 * 1024);
  /** Request data of all connections together (G8). */
  private readonly budget: MemoryBudget;
  /** Looks for clients that hold memory others wait for without progress (sweepStalled). */
  private readonly stallSweep: NodeJS.Timeout;
  private stalledDrops = 0;
  /** A missing send-buffer widening is said once, not per client. */
  private toldNarrowSendBuffer = false;
  /** Refusals over --max-connections: a client reconnecting in a loop must not flood the log (G8). */
  private readonly refusedLog: LogThrottle;

  constructor(
    private readonly exports: ExportTable,
    private readonly options: ServerOptions,
    private readonly log: Logger,
  ) {
    this.budget = new MemoryBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES);
    this.refusedLog = new LogThrottle((m) => log.warn(m));
    this.stallSweep = setInterval(() => this.sweepStalled(), Math.min(1000, Math.max(50, options.stallTimeoutMs / 4)));
    this.stallSweep.unref();
  }

  /**
   * While some connection waits for room in the memory budget, a client that
   * holds part of it and has made no progress for stallTimeoutMs is dropped,
   * so that it gives its memory back (G8). Without contention nobody is: a
   * client may be as slow as it likes while it harms no one. Every connection
   * is looked at on every tick, so how long one has stalled does not depend
   * on when the contention began.
   */
  private sweepStalled(): void {
    const now = performance.now();
    const contended = this.budget.contended;
    for (const c of this.connections) {
      const stalled = c.stalledFor(now);
      if (contended && stalled >= this.options.stallTimeoutMs) {
        c.dropStalled(stalled);
        this.stalledDrops++;
      }
    }
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Clients disconnected for holding memory others waited for (sweepStalled), since the start. */
  get droppedStalled(): number {
    return this.stalledDrops;
  }

  /** Clients attached to the named export right now. */
  clientsOf(exportName: string): string[] {
    return [...this.connections].filter((c) => c.export === exportName).map((c) => c.id);
  }

  /** Listen on a TCP address or unix socket; resolves with the bound endpoint (port 0 gets an ephemeral port). */
  async listen(endpoint: Endpoint): Promise<Endpoint> {
    if (endpoint.kind === 'unix') {
      const tooLong = unixSocketPathTooLong(endpoint.path);
      if (tooLong !== undefined) throw new ListenError(tooLong, 'choose a shorter --socket path, e.g. /run/nbd-remapper/nbd.sock');
      await removeStaleSocket(endpoint.path);
    }
    // Paused, so that nothing is read before the socket is adopted for receiving in place.
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => this.accept(socket, endpoint.kind));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(ListenError.from(err, endpoint)));
      if (endpoint.kind === 'tcp') server.listen(endpoint.port, endpoint.host, () => resolve());
      else server.listen(endpoint.path, () => resolve());
    });
    server.on('error', (err) => this.log.error(`listener error: ${err.message}`));
    this.listeners.push(server);
    if (endpoint.kind === 'unix') return endpoint;
    const address = server.address();
    return { kind: 'tcp', host: endpoint.host, port: typeof address === 'object' && address ? address.port : endpoint.port };
  }

  /** Stop accepting, answer every request in flight, then close every connection. */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.stallSweep);
    await Promise.all(this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
    await Promise.all([...this.connections].map((c) => c.shutdown()));
  }

  private accept(accepted: net.Socket, transport: Endpoint['kind']): void {
    const peer = accepted.remoteAddress ? `${accepted.remoteAddress}:${accepted.remotePort}` : 'unix';
    if (this.stopping) {
      accepted.destroy();
      return;
    }
    if (this.connections.size >= this.options.maxConnections) {
      this.refusedLog.note(`refusing client ${peer}: ${this.options.maxConnections} connections already (--max-connections)`);
      accepted.destroy();
      return;
    }
    const id = `c${this.nextId++}`;
    const log = this.log.child(`[${id}]`);
    const reader = new SocketReader();
    // A socket that STARTTLS may hand to a TLSSocket keeps Node's own reading: TLS decrypts into 'data' chunks.
    const adopted = this.options.receiveInPlace === false || this.options.tls !== undefined ? undefined : adoptAcceptedSocket(accepted, reader.onread);
    const socket = adopted ?? accepted;
    reader.attach(socket, adopted ? 'onread' : 'data');
    log.debug(`client connected from ${peer}${adopted ? '' : " (payloads gathered from 'data' chunks: this Node cannot receive in place)"}`);
    if (transport === 'unix') {
      const sendBuffer = widenUnixSendBuffer(socket);
      if (!sendBuffer.widened && !this.toldNarrowSendBuffer) {
        this.toldNarrowSendBuffer = true;
        log.warn(`replies on unix sockets leave through the kernel's default send buffer (~208 KiB), which slows sequential reads: ${sendBuffer.why}`);
      }
    }
    const connection = new Connection(id, socket, reader, this.exports, this.options, log, this.buffers, this.budget);
    this.connections.add(connection);
    void connection.closed.then(() => this.connections.delete(connection));
  }
}

/** A socket file left by a server that died is removed; one that still answers is in use. */
async function removeStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) {
    throw new ListenError(
      `unix socket ${path} is in use by another running server`,
      'stop that server, or choose another path with --socket',
    );
  }
  unlinkSync(path);
}
