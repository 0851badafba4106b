import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { HandshakeMachine, type NegotiatedSession } from 'nbd-protocol-ts';
import { formatBytes } from '../format/bytes.js';
import type { Logger } from '../log/logger.js';
import { SocketReader } from '../net/socket-reader.js';
import type { BufferPool } from './buffer-pool.js';
import { CLOSE_GRACE_MS, endConnection } from './end-connection.js';
import type { ExportTable } from './export-table.js';
import type { MemoryBudget } from './memory-budget.js';
import type { ServerTls } from './tls-certificates.js';
import { registryOf } from './export-table.js';
import { TransmissionSession, type TransmissionLimits } from './transmission-session.js';

export interface ConnectionOptions {
  /** A client that has not reached the transmission phase by then is dropped (G8; QEMU CVE-2024-7409). */
  handshakeTimeoutMs: number;
  limits: TransmissionLimits;
  /** TLS through NBD_OPT_STARTTLS; absent: none (STARTTLS is answered ERR_UNSUP). */
  tls?: ServerTls;
}

/**
 * One client from accept to close: the handshake (driven by the protocol
 * package's state machine), then the transmission session.
 */
export class Connection {
  private session: TransmissionSession | undefined;
  private exportName: string | undefined;
  private readonly handshakeTimer: NodeJS.Timeout;
  private closedOnce = false;
  private wakeClosed!: () => void;
  readonly closed: Promise<void>;

  constructor(
    readonly id: string,
    private socket: Socket,
    private reader: SocketReader,
    private readonly exports: ExportTable,
    private readonly options: ConnectionOptions,
    private readonly log: Logger,
    private readonly buffers: BufferPool,
    private readonly budget: MemoryBudget,
  ) {
    const machine = new HandshakeMachine(registryOf(exports), { tls: options.tls?.mode ?? 'off' });
    this.closed = new Promise((resolve) => (this.wakeClosed = resolve));
    this.watch(socket);

    this.handshakeTimer = setTimeout(() => {
      this.log.warn(`handshake not finished within ${options.handshakeTimeoutMs} ms, dropping the client`);
      this.socket.destroy();
    }, options.handshakeTimeoutMs);

    let handshaking = true;
    const onHandshakeData = (chunk: Buffer): void => {
      if (!handshaking) return;
      for (const event of machine.push(chunk)) {
        switch (event.type) {
          case 'send':
            this.socket.write(event.data);
            break;
          case 'close':
            this.log.debug(`handshake ended: ${event.reason}`);
            handshaking = false;
            clearTimeout(this.handshakeTimer);
            endConnection(this.socket, CLOSE_GRACE_MS, () => this.log.debug('the client did not close after its handshake ended, cutting it off'));
            return;
          case 'starttls':
            // The ACK just written is the last cleartext; the handshake goes on inside TLS.
            this.startTls(onHandshakeData);
            return;
          case 'done':
            handshaking = false;
            this.beginTransmission(event.session);
            return;
        }
      }
    };
    // The machine may keep what it is given: each chunk is a buffer of its own.
    reader.deliverChunks(onHandshakeData);
    socket.write(machine.greeting());
  }

  /** The connection ends when its socket closes, whichever socket carries it by then (the plain one, or TLS over it). */
  private watch(socket: Socket): void {
    socket.on('error', (err) => this.log.debug(`socket error: ${err.message}`));
    socket.once('close', () => this.onClose());
  }

  /**
   * NBD_OPT_STARTTLS was acknowledged: the socket is handed to TLS, and the
   * rest of the handshake and the transmission phase run over the TLS
   * socket. A failed TLS handshake drops the client (the handshake timeout
   * still runs, so a client that stalls inside TLS is dropped too).
   */
  private startTls(onHandshakeData: (chunk: Buffer) => void): void {
    const tls = this.options.tls;
    if (tls === undefined) {
      // The machine offers STARTTLS only when TLS is configured.
      this.socket.destroy();
      return;
    }
    // With verifyPeer a client without a certificate the CA signed fails the TLS handshake (and is dropped below).
    const secure = new TLSSocket(this.socket, { isServer: true, secureContext: tls.context, requestCert: tls.verifyPeer, rejectUnauthorized: tls.verifyPeer });
    secure.once('secure', () => this.log.debug(`TLS established (${secure.getProtocol() ?? 'unknown protocol'}, ${secure.getCipher().name})`));
    secure.on('error', (err) => this.log.warn(`TLS failed, dropping the client: ${err.message}`));
    const reader = new SocketReader();
    reader.attach(secure, 'data');
    this.socket = secure;
    this.reader = reader;
    this.watch(secure);
    reader.deliverChunks(onHandshakeData);
  }

  get export(): string | undefined {
    return this.exportName;
  }

  /** See TransmissionSession.stalledFor; 0 before the transmission phase. */
  stalledFor(now: number): number {
    return this.session?.stalledFor(now) ?? 0;
  }

  /**
   * Drops a client that keeps memory others wait for (NbdServer's stall
   * sweep). What it had in flight is not answered; writes it sent are as
   * after any lost connection: not acknowledged, so the client cannot count
   * on them.
   */
  dropStalled(stalledMs: number): void {
    const held = this.session?.heldBytes ?? 0;
    this.log.warn(
      `disconnecting the client: it holds ${formatBytes(held)} of request memory that other clients wait for, and has neither read its replies nor sent the rest of a request for ${(stalledMs / 1000).toFixed(1)} s (--stall-timeout)`,
    );
    this.socket.destroy();
  }

  /**
   * Server shutdown: answer what is in flight, then end our side. A client
   * that does not close its side in return is cut off after a grace period,
   * so one stuck client cannot keep the server from exiting.
   */
  async shutdown(): Promise<void> {
    clearTimeout(this.handshakeTimer);
    if (this.session) await this.session.quiesce();
    // Still haggling: what the client sends from now on is not answered on a connection ended below.
    else this.reader.discardRest();
    endConnection(this.socket, CLOSE_GRACE_MS, () =>
      this.log.warn(`client did not close within ${CLOSE_GRACE_MS / 1000} s of the server ending the connection, cutting it off`),
    );
    await this.closed;
  }

  private beginTransmission(negotiated: NegotiatedSession): void {
    clearTimeout(this.handshakeTimer);
    const exp = this.exports.get(negotiated.export.name);
    if (!exp) {
      // The export vanished between haggling and now (e.g. `source` after finish).
      this.log.warn(`export ${negotiated.export.name} is gone, closing`);
      this.socket.destroy();
      return;
    }
    this.exportName = exp.name;
    exp.attach?.(this.id);
    this.log.info(
      `attached to export '${exp.name}' (${negotiated.structuredReplies ? 'structured' : 'simple'} replies${
        negotiated.metaContexts.size > 0 ? ', block status' : ''
      })`,
    );
    this.session = new TransmissionSession(this.socket, this.reader, negotiated, exp, this.options.limits, this.log, this.buffers, this.budget);
  }

  private onClose(): void {
    if (this.closedOnce) return;
    this.closedOnce = true;
    this.wakeClosed();
    clearTimeout(this.handshakeTimer);
    if (this.exportName !== undefined) {
      this.exports.get(this.exportName)?.detach?.(this.id);
      this.log.info(`detached from export '${this.exportName}'`);
    }
  }
}
