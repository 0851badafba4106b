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
 * Encodes replies for one connection in the negotiated style and writes each
 * reply's header and payload in a single corked write, so a reply never
 * interleaves with another and costs one syscall.
 */
export class ReplyWriter {
  private batching = false;

  constructor(
    private readonly socket: Socket,
    private readonly structured: boolean,
  ) {}

  /**
   * Holds the replies sent until the event loop's check phase, so those of
   * every request completing in one loop turn leave in one writev. Each
   * write to a unix socket wakes the client, and one per reply cost ~160 µs
   * of our CPU for each 1 MiB WRITE answered (CPU profile, nbdcopy -C 1).
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
    if (!payload || payload.length === 0) {
      this.socket.write(header, sent && (() => sent()));
      return;
    }
    this.socket.write(header);
    this.socket.write(payload, sent && (() => sent()));
  }
}
