import type { Socket } from 'node:net';
import {
  ReplyFlag,
  encodeBlockStatus,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeSimpleReply,
  type ErrnoValue,
  type StatusDescriptor,
} from 'nbd-protocol-ts';

/**
 * Encodes replies for one connection in the negotiated style. A reply's
 * header and payload are written back to back (JS runs one reply at a time,
 * so replies never interleave), and the replies of one event-loop turn leave
 * together in one writev.
 */
export class ReplyWriter {
  private batching = false;
  /** Replies the socket has handed to the kernel: the client is reading them. */
  private flushedCount = 0;
  private readonly onFlushed = (): void => {
    this.flushedCount++;
  };

  constructor(
    private readonly socket: Socket,
    private readonly structured: boolean,
  ) {}

  get flushed(): number {
    return this.flushedCount;
  }

  /**
   * Holds the replies sent until the event loop's check phase, so those of
   * every request completing in one loop turn leave in one writev. Each
   * socket write is a syscall that wakes the client: one per reply cost the
   * event loop ~45 µs per 1 MiB WRITE answered (CPU profile, nbdcopy -C 1:
   * 136 ms of socket writes per 3 GiB, 76 ms batched).
   */
  batch(): void {
    if (this.batching) return;
    this.batching = true;
    this.socket.cork();
    setImmediate(() => {
      this.batching = false;
      this.socket.uncork();
    });
  }

  /** `sent` runs once the socket no longer needs `data` (written, or the connection died). */
  data(cookie: bigint, offset: number, data: Buffer, sent?: () => void): void {
    if (!this.structured) {
      this.send(encodeSimpleReply(cookie, 0), data, sent);
    } else if (data.length === 0) {
      this.send(encodeNoneChunk(cookie), undefined, sent);
    } else {
      this.send(encodeOffsetDataHeader(ReplyFlag.DONE, cookie, offset, data.length), data, sent);
    }
  }

  ok(cookie: bigint): void {
    this.send(encodeSimpleReply(cookie, 0));
  }

  blockStatus(cookie: bigint, contextId: number, descriptors: StatusDescriptor[]): void {
    this.send(encodeBlockStatus(ReplyFlag.DONE, cookie, contextId, descriptors));
  }

  error(cookie: bigint, errno: ErrnoValue, message: string): void {
    if (this.structured) this.send(encodeErrorChunk(ReplyFlag.DONE, cookie, errno, message));
    else this.send(encodeSimpleReply(cookie, errno));
  }

  private send(header: Buffer, payload?: Buffer, sent?: () => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      sent?.();
      return;
    }
    this.batch();
    const done =
      sent === undefined
        ? this.onFlushed
        : (): void => {
            this.onFlushed();
            sent();
          };
    if (!payload || payload.length === 0) {
      this.socket.write(header, done);
      return;
    }
    this.socket.write(header);
    this.socket.write(payload, done);
  }
}
