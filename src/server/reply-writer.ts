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
  constructor(
    private readonly socket: Socket,
    private readonly structured: boolean,
  ) {}

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
    if (!payload || payload.length === 0) {
      this.socket.write(header, sent && (() => sent()));
      return;
    }
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(payload, sent && (() => sent()));
    this.socket.uncork();
  }
}
