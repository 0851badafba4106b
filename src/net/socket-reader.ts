import type { OnReadOpts, Socket } from 'node:net';
import { ByteQueue } from 'nbd-protocol-ts';

/** Stop reading from the socket while this much is buffered and unread: a flooding server must not fill our memory. */
const HIGH_WATER = 64 * 1024 * 1024;
/** Handshake messages are small; a recv of more just takes another turn. */
const SCRATCH_BYTES = 16 * 1024;

/** The stream ended before a read could be satisfied; `cause` is the socket's error, if it had one. */
export class StreamEndedError extends Error {
  override readonly name = 'StreamEndedError';
}

/** Takes over a socket's bytes as they arrive, choosing where each recv lands. */
export interface ByteSink {
  /** Where the next recv lands; never empty. */
  buffer(): Buffer;
  /** `bytes` arrived at the start of the buffer buffer() last gave. Must not throw: it runs in the socket's read callback. */
  received(bytes: number): void;
  /** No more bytes will come. */
  ended(cause: StreamEndedError): void;
}

/**
 * A socket's receiving side. It starts with awaitable reads of exact byte
 * counts, for a protocol parsed one message at a time (the handshake); then
 * deliverTo() hands every later byte to a sink, which picks the memory each
 * recv lands in (when the socket receives through `onread`; 'data' chunks
 * are copied into it instead). One read may wait at a time. Both NBD sides
 * use it: the client, and the server for the sockets it accepts.
 */
export class SocketReader {
  /** For `net.connect`: Node asks for the buffer of each recv, then reports how much landed in it. */
  readonly onread: OnReadOpts = {
    buffer: () => this.nextBuffer(),
    callback: (bytes) => this.arrived(bytes),
  };
  private readonly scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  private readonly queue = new ByteQueue();
  private socket: Socket | undefined;
  private paused = false;
  /** Whether the buffer of the recv under way came from the sink (else it is scratch). */
  private sinkIssued = false;
  private sink: ByteSink | undefined;
  private waiting: { bytes: number; resolve(b: Buffer): void; reject(e: Error): void } | undefined;
  private ended: StreamEndedError | undefined;

  /**
   * Watches the socket; call at once, before any I/O. `receives` says how its
   * bytes arrive: through this reader's `onread` (the socket was opened or
   * adopted with it), or as 'data' chunks, which are copied to the sink.
   */
  attach(socket: Socket, receives: 'onread' | 'data' = 'onread'): void {
    this.socket = socket;
    if (receives === 'data') {
      socket.on('data', (chunk: Buffer) => this.arrivedChunk(chunk));
      socket.resume();
    }
    let socketError: Error | undefined;
    socket.on('error', (err) => (socketError ??= err));
    socket.once('close', () => {
      this.ended = new StreamEndedError(socketError ? `connection lost: ${socketError.message}` : 'connection closed by the peer', { cause: socketError });
      if (this.sink) this.sink.ended(this.ended);
      else this.satisfy();
    });
  }

  /** Exactly n bytes, removed from the stream. */
  read(bytes: number): Promise<Buffer> {
    if (this.sink) return Promise.reject(new Error('SocketReader: the stream was handed to a sink'));
    if (this.waiting) return Promise.reject(new Error('SocketReader: a read is already waiting'));
    return new Promise((resolve, reject) => {
      this.waiting = { bytes, resolve, reject };
      this.satisfy();
    });
  }

  /** From now on every byte goes to `sink`, starting with those received and not yet read. */
  deliverTo(sink: ByteSink): void {
    if (this.waiting) throw new Error('SocketReader: cannot hand over the stream while a read waits');
    this.sink = sink;
    this.feed(this.queue.takeAll());
    if (this.ended) sink.ended(this.ended);
    else this.resume();
  }

  /**
   * From now on every byte goes to `onChunk` as a buffer of its own, which it
   * may keep: for small messages (the handshake), received into this reader's
   * scratch and copied out, or passed on as they are when they come as 'data' chunks.
   */
  deliverChunks(onChunk: (chunk: Buffer) => void): void {
    const scratch = this.scratch;
    this.deliverTo({ buffer: () => scratch, received: (bytes) => onChunk(Buffer.from(scratch.subarray(0, bytes))), ended: () => undefined });
  }

  /**
   * From now on bytes are read and dropped, with reading resumed if it was
   * paused: a connection that is closing must still see the peer's close.
   */
  discardRest(): void {
    const scratch = this.scratch;
    this.deliverTo({ buffer: () => scratch, received: () => undefined, ended: () => undefined });
    this.paused = false;
    this.socket?.resume();
  }

  private nextBuffer(): Buffer {
    this.sinkIssued = this.sink !== undefined;
    return this.sink ? this.sink.buffer() : this.scratch;
  }

  /** Returns false to stop reading (the high-water pause). */
  private arrived(bytes: number): boolean {
    if (this.sinkIssued && this.sink) {
      this.sink.received(bytes);
      return true;
    }
    // Scratch is reused by the next recv, so what is kept must be a copy.
    const copy = Buffer.from(this.scratch.subarray(0, bytes));
    if (this.sink) {
      // The sink took over while this recv's buffer was scratch.
      this.feed(copy);
      return true;
    }
    this.queue.push(copy);
    this.satisfy();
    if (this.queue.length > HIGH_WATER) this.paused = true;
    return !this.paused;
  }

  /** A 'data' chunk: the socket's own memory, fresh for each chunk, so it may be kept as it is. */
  private arrivedChunk(chunk: Buffer): void {
    if (this.sink) {
      this.feed(chunk);
      return;
    }
    this.queue.push(chunk);
    this.satisfy();
    if (this.queue.length > HIGH_WATER) {
      this.paused = true;
      this.socket?.pause();
    }
  }

  /** Hands bytes that did not land in the sink's own memory to it, as if they had. */
  private feed(bytes: Buffer): void {
    const sink = this.sink as ByteSink;
    for (let at = 0; at < bytes.length; ) {
      const n = bytes.copy(sink.buffer(), 0, at);
      at += n;
      sink.received(n);
    }
  }

  private satisfy(): void {
    const w = this.waiting;
    if (!w) return;
    if (this.queue.length >= w.bytes) {
      this.waiting = undefined;
      w.resolve(this.queue.take(w.bytes));
      if (this.queue.length <= HIGH_WATER) this.resume();
    } else if (this.ended) {
      this.waiting = undefined;
      w.reject(this.ended);
    } else {
      // The caller needs more than is buffered, so the high-water pause must not starve it.
      this.resume();
    }
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket?.resume();
  }
}
