import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { canSendFromFile, readCached, sendFromFile, writtenBefore } from 'linux-io';
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
import { socketFd } from '../net/socket-fd.js';
import type { FileSpan } from './block-export.js';
import { UnreadFileReplies } from './unread-file-replies.js';

/**
 * What became of a READ reply sent from a file: all of it went; none did
 * (reply with data() as usual); or the file could not give the last `rest`
 * bytes without waiting, and finishFileReply must bring them before any
 * other reply can go.
 */
export type FileReplyOutcome = { sent: 'all' } | { sent: 'none' } | { sent: 'part'; rest: number };

const SENT_ALL: FileReplyOutcome = { sent: 'all' };
const SENT_NONE: FileReplyOutcome = { sent: 'none' };
const NO_BYTES = Buffer.alloc(0);
/** The peer is gone: the reply has nowhere to go. */
const PEER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ENOTCONN']);
/**
 * When the socket fills in the middle of a reply from a file, this much of
 * the rest is copied and queued, so that libuv tells us when the socket takes
 * more (Node says nothing of a socket with nothing queued). A unix socket
 * wakes its writer with three quarters of its buffer free: sendfile then
 * fills that without copying.
 */
const WAKE_PIECE_BYTES = 16 * 1024;

/**
 * Why the kernel refused a reply from a file (no cachestat before Linux 6.5,
 * a file sendfile cannot read), once for the whole process: its connections
 * serve the same disk and would each be refused alike, and the log says it
 * once.
 */
let fileRepliesRefused: string | undefined;

/** A reply from a file that the socket has not taken whole yet; every other reply waits behind it. */
interface FileReplyInProgress {
  headerRest: Buffer;
  /** Where the reply's data lies, asked again before each piece (BlockExport.fileSpan). */
  locate: () => FileSpan | undefined;
  /** Data bytes gone so far, and still to go. */
  sent: number;
  left: number;
  /** The file could not give `left` without waiting: the session reads it (finishFileReply). */
  copying: boolean;
  settle: (outcome: FileReplyOutcome) => void;
  held: Array<() => void>;
}

/**
 * Encodes replies for one connection in the negotiated style. A reply's
 * header and payload are written back to back (JS runs one reply at a time,
 * so replies never interleave), and the replies of one event-loop turn leave
 * together in one writev. A READ reply may instead go straight from the page
 * cache (dataFromFile); when the socket takes only part of it, every other
 * reply waits until its rest is written.
 */
export class ReplyWriter {
  private batching = false;
  /** Replies the socket has handed to the kernel: the client is reading them. */
  private flushedCount = 0;
  /** A reply left: count it, and let replies from files go once nothing waits in the socket's queue. */
  private readonly afterWrite = (): void => {
    this.flushedCount++;
    this.unread.check();
    if (this.socketWaiters.length > 0 && this.inProgress === undefined && this.socket.writableLength === 0) this.wakeSocketWaiters();
  };
  /** Replies from files are possible here until the kernel refuses one for good. */
  private fileReplies: boolean;
  private inProgress: FileReplyInProgress | undefined;
  /** Replies from files waiting for the socket's own queue to empty. */
  private socketWaiters: Array<() => void> = [];
  private readonly unread: UnreadFileReplies;

  constructor(
    private readonly socket: Socket,
    private readonly structured: boolean,
    /** Told why the kernel refused a reply from a file, by the first connection it happens to (all copy from then on). */
    private readonly onFileRepliesOff: (why: string) => void = () => undefined,
  ) {
    // Over TLS the bytes must pass through the encryption: a reply from the page cache would leave in clear.
    this.fileReplies = canSendFromFile && fileRepliesRefused === undefined && !(socket instanceof TLSSocket);
    this.unread = new UnreadFileReplies(socket);
    socket.once('close', () => this.wakeSocketWaiters());
  }

  /** Whether dataFromFile may be tried at all on this connection. */
  get sendsFromFiles(): boolean {
    return this.fileReplies;
  }

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

  /**
   * A READ reply whose data the kernel sends from the page cache (sendfile),
   * never copied through this process. It goes only when nothing waits in
   * the socket's own queue, so it cannot land inside another reply: until
   * then it waits. A reply whose pages are not all cached is not sent
   * ('none'): sendfile would wait for the device on the event loop. When the
   * socket fills part way, the rest follows as the socket takes it, and the
   * other replies wait behind it.
   */
  async dataFromFile(cookie: bigint, offset: number, length: number, locate: () => FileSpan | undefined): Promise<FileReplyOutcome> {
    while (this.fileReplies && this.isOpen() && (this.inProgress !== undefined || this.socket.writableLength > 0)) {
      await new Promise<void>((resolve) => this.socketWaiters.push(resolve));
    }
    // Gone while it waited: nothing to send, and nothing to read for it.
    if (!this.isOpen()) return SENT_ALL;
    // Asked now, not before the wait: a disk closed meanwhile gives none (its descriptor's number may name another file by then).
    const fd = socketFd(this.socket);
    if (!this.fileReplies || fd === undefined) return SENT_NONE;
    const span = this.sendableSpan(locate);
    if (span === undefined) return SENT_NONE;
    const header = this.structured ? encodeOffsetDataHeader(ReplyFlag.DONE, cookie, offset, length) : encodeSimpleReply(cookie, 0);
    const written = this.sendFromFile(fd, header, span.fd, span.position, length);
    this.spanUsed(span, written !== 'peer gone' && written > header.length);
    if (written === 'peer gone') return SENT_ALL;
    if (written < 0) return SENT_NONE;
    if (written === header.length + length) {
      this.afterWrite();
      return SENT_ALL;
    }
    const sentData = Math.max(0, written - header.length);
    return new Promise((settle) => {
      this.inProgress = {
        headerRest: header.subarray(Math.min(written, header.length)),
        locate,
        sent: sentData,
        left: length - sentData,
        copying: false,
        settle,
        held: [],
      };
      this.queueWakePiece();
    });
  }

  /** The last bytes of a reply from a file that the file could not give without waiting ('part'); the replies held behind it follow. */
  finishFileReply(rest: Buffer, sent?: () => void): void {
    const reply = this.inProgress;
    if (reply === undefined || !reply.copying) throw new Error('finishFileReply without a reply from a file waiting for its rest');
    this.inProgress = undefined;
    this.send(reply.headerRest, rest, sent);
    this.releaseHeld(reply);
  }

  /** The rest of a reply from a file cannot be had: the stream is broken mid-reply, so the connection goes. */
  abandonFileReply(): void {
    const reply = this.inProgress;
    if (reply === undefined) return;
    this.inProgress = undefined;
    this.socket.destroy();
    this.releaseHeld(reply);
  }

  /**
   * Shutdown: no reply may wait on a client that does not read. Replies from
   * files waiting for the socket, and the rest of one under way, go into the
   * socket's queue as copies like any other reply, so the requests in flight
   * end; a client that never reads is then cut off by the shutdown's grace.
   */
  stopWaitingForClient(): void {
    this.fileReplies = false;
    this.wakeSocketWaiters();
    const reply = this.inProgress;
    if (reply !== undefined && !reply.copying) this.leaveRestToCopy(reply);
  }

  /** sendFromFile's count, or 'peer gone' (the socket is destroyed). An error that is not the peer's turns replies from files off for good. */
  private sendFromFile(socketFd: number, header: Buffer, fileFd: number, position: number, length: number): number | 'peer gone' {
    try {
      return sendFromFile(socketFd, header, fileFd, position, length);
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && PEER_GONE.has(code)) {
        this.socket.destroy();
        return 'peer gone';
      }
      this.fileReplies = false;
      if (fileRepliesRefused === undefined) {
        fileRepliesRefused = err instanceof Error ? err.message : String(err);
        this.onFileRepliesOff(fileRepliesRefused);
      }
      return writtenBefore(err);
    }
  }

  /** Queues the next bytes of the reply in progress (the header's rest, or a piece of data), to hear when the socket takes more. */
  private queueWakePiece(): void {
    const reply = this.inProgress as FileReplyInProgress;
    let piece = reply.headerRest;
    if (piece.length > 0) {
      reply.headerRest = NO_BYTES;
    } else {
      const span = reply.locate();
      piece = Buffer.allocUnsafe(Math.min(reply.left, WAKE_PIECE_BYTES));
      let got = 0;
      try {
        if (span !== undefined) got = readCached(span.fd, piece, span.position + reply.sent).bytes;
      } catch {
        // Not this way, then: the session reads the rest.
      } finally {
        // A copy: the socket holds none of the file's pages for it.
        if (span !== undefined) this.spanUsed(span, false);
      }
      if (got === 0) {
        this.leaveRestToCopy(reply);
        return;
      }
      piece = piece.subarray(0, got);
      reply.sent += got;
      reply.left -= got;
    }
    this.socket.write(piece, this.onWakePieceWritten);
  }

  private readonly onWakePieceWritten = (err?: Error | null): void => {
    const reply = this.inProgress;
    if (reply === undefined || reply.copying) return;
    if (err || !this.isOpen()) {
      this.settleInProgress(reply, SENT_ALL);
      return;
    }
    if (reply.left > 0) {
      const fd = socketFd(this.socket);
      if (fd === undefined) {
        this.settleInProgress(reply, SENT_ALL);
        return;
      }
      const span = this.sendableSpan(reply.locate);
      const written = span === undefined ? -1 : this.sendFromFile(fd, NO_BYTES, span.fd, span.position + reply.sent, reply.left);
      if (span !== undefined) this.spanUsed(span, written !== 'peer gone' && written > 0);
      if (written === 'peer gone') {
        this.settleInProgress(reply, SENT_ALL);
        return;
      }
      if (written < 0 || (written === 0 && !this.fileReplies)) {
        this.leaveRestToCopy(reply);
        return;
      }
      reply.sent += written;
      reply.left -= written;
      if (reply.left > 0) {
        this.queueWakePiece();
        return;
      }
    }
    this.afterWrite();
    this.settleInProgress(reply, SENT_ALL);
  };

  /** Where a reply's data lies, when it may be sent from there: a span whose reading must be watched needs a socket that can be (UnreadFileReplies.ready). */
  private sendableSpan(locate: () => FileSpan | undefined): FileSpan | undefined {
    const span = locate();
    if (span?.whenTaken === undefined || this.unread.ready()) return span;
    span.whenTaken();
    return undefined;
  }

  /** A span's export learns when the client has read what was sent from it (FileSpan.whenTaken): at once when nothing was. */
  private spanUsed(span: FileSpan, pagesSent: boolean): void {
    if (span.whenTaken === undefined) return;
    if (pagesSent) this.unread.add(span.whenTaken);
    else span.whenTaken();
  }

  /** The rest is copied after all: the session reads it and brings it with finishFileReply; the other replies still wait behind it. */
  private leaveRestToCopy(reply: FileReplyInProgress): void {
    reply.copying = true;
    reply.settle({ sent: 'part', rest: reply.left });
  }

  private settleInProgress(reply: FileReplyInProgress, outcome: FileReplyOutcome): void {
    this.inProgress = undefined;
    reply.settle(outcome);
    this.releaseHeld(reply);
  }

  private releaseHeld(reply: FileReplyInProgress): void {
    for (const send of reply.held) send();
    if (this.socket.writableLength === 0) this.wakeSocketWaiters();
  }

  private wakeSocketWaiters(): void {
    for (const wake of this.socketWaiters.splice(0)) wake();
  }

  private isOpen(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  ok(cookie: bigint): void {
    this.send(encodeSimpleReply(cookie, 0));
  }

  /** One context's chunk of a BLOCK_STATUS reply; `last` ends the reply. */
  blockStatus(cookie: bigint, contextId: number, descriptors: StatusDescriptor[], last: boolean): void {
    this.send(encodeBlockStatus(last ? ReplyFlag.DONE : 0, cookie, contextId, descriptors));
  }

  error(cookie: bigint, errno: ErrnoValue, message: string): void {
    if (this.structured) this.send(encodeErrorChunk(ReplyFlag.DONE, cookie, errno, message));
    else this.send(encodeSimpleReply(cookie, errno));
  }

  private send(header: Buffer, payload?: Buffer, sent?: () => void): void {
    if (this.inProgress !== undefined) {
      this.inProgress.held.push(() => this.send(header, payload, sent));
      return;
    }
    if (!this.isOpen()) {
      sent?.();
      return;
    }
    this.batch();
    const done =
      sent === undefined
        ? this.afterWrite
        : (): void => {
            this.afterWrite();
            sent();
          };
    if (!payload || payload.length === 0) {
      this.socket.write(header, done);
      return;
    }
    if (header.length > 0) this.socket.write(header);
    this.socket.write(payload, done);
  }
}
