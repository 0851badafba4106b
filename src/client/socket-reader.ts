import type { Socket } from 'node:net';
import { ByteQueue } from 'nbd-protocol-ts';

/** Stop reading from the socket while this much is buffered and unread: a flooding server must not fill our memory. */
const HIGH_WATER = 64 * 1024 * 1024;

/** The stream ended before a read could be satisfied; `cause` is the socket's error, if it had one. */
export class StreamEndedError extends Error {
  override readonly name = 'StreamEndedError';
}

/**
 * Awaitable reads of exact byte counts from a socket, for a protocol that is
 * parsed one frame at a time. One read (or peek) may wait at a time — the
 * client parses replies in a single loop.
 */
export class SocketReader {
  private readonly queue = new ByteQueue();
  private waiting: { bytes: number; consume: boolean; resolve(b: Buffer): void; reject(e: Error): void } | undefined;
  private ended: StreamEndedError | undefined;

  constructor(private readonly socket: Socket) {
    let socketError: Error | undefined;
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      if (this.queue.length > HIGH_WATER) socket.pause();
      this.satisfy();
    });
    socket.on('error', (err) => (socketError ??= err));
    socket.once('close', () => {
      this.ended = new StreamEndedError(socketError ? `connection lost: ${socketError.message}` : 'connection closed by the peer', { cause: socketError });
      this.satisfy();
    });
  }

  get buffered(): number {
    return this.queue.length;
  }

  /** Exactly n bytes, removed from the stream. */
  read(bytes: number): Promise<Buffer> {
    return this.wait(bytes, true);
  }

  /** The next n bytes, left in the stream. */
  peek(bytes: number): Promise<Buffer> {
    return this.wait(bytes, false);
  }

  private wait(bytes: number, consume: boolean): Promise<Buffer> {
    if (this.waiting) return Promise.reject(new Error('SocketReader: a read is already waiting'));
    return new Promise((resolve, reject) => {
      this.waiting = { bytes, consume, resolve, reject };
      this.satisfy();
    });
  }

  private satisfy(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.queue.length >= w.bytes) {
      this.waiting = undefined;
      w.resolve(w.consume ? this.queue.take(w.bytes) : this.queue.peek(w.bytes));
      if (this.queue.length <= HIGH_WATER && this.socket.isPaused()) this.socket.resume();
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    } else if (this.socket.isPaused()) {
      // The caller needs more than is buffered, so the high-water pause must not starve it.
      this.socket.resume();
    }
  }
}
