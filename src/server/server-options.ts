import type { ConnectionOptions } from './connection.js';

export interface ServerOptions extends ConnectionOptions {
  /** Clients beyond this are refused at accept (G8). */
  maxConnections: number;
  /**
   * false: keep each accepted socket and gather payloads from its 'data'
   * chunks — the path a Node without the internals of adoptAcceptedSocket
   * takes. Default true (receive in place where Node allows it).
   */
  receiveInPlace?: boolean;
  /**
   * Request data all connections together may hold: READ buffers until the
   * reply has left, WRITE payloads until done (MemoryBudget). Default
   * DEFAULT_MAX_BUFFERED_BYTES.
   */
  maxBufferedBytes?: number;
  /**
   * While a connection waits for room in the budget, a client that holds
   * part of it and for this long neither reads its replies nor sends the
   * rest of a payload is disconnected (G8: one client must not hang others).
   * Well under the kernel client's usual timeout (`nbd-client -t 60`), whose
   * requests would fail while they wait.
   */
  stallTimeoutMs: number;
}

/** Four times what one connection may have in flight: room for a few busy clients, not for 64 that never read. */
export const DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024;

export type Endpoint = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** Apart from the server, so the CLI can show them in --help without loading it. */
export const DEFAULT_SERVER_OPTIONS: ServerOptions = {
  handshakeTimeoutMs: 10_000,
  maxConnections: 64,
  stallTimeoutMs: 15_000,
  limits: {
    maxInFlight: 64,
    maxInFlightBytes: 64 * 1024 * 1024,
    maxQueuedReplyBytes: 32 * 1024 * 1024,
    maxPayload: 32 * 1024 * 1024,
  },
};
