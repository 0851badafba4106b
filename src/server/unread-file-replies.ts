import type { Socket } from 'node:net';
import { closeDescriptor, holdDescriptor, sendQueueBytes, shutdownSocket } from 'linux-io';
import { socketFd } from '../net/socket-fd.js';

/** How often the kernel is asked while replies wait to be read. */
const POLL_MS = 10;

/**
 * Sockets held at once, process-wide. A hold outlives its connection while
 * the client keeps replies unread, so clients that are dropped without
 * reading would otherwise pile up descriptors (G8); past the bound, replies
 * that must be watched are copied instead.
 */
export const MAX_HELD_SOCKETS = 128;
/** Every watch that holds a socket now: their count is bounded by MAX_HELD_SOCKETS. */
const holding = new Set<UnreadFileReplies>();

/**
 * Asks the kernel now, for every held socket, rather than at the next poll:
 * replies their clients have read are said taken at once. Called before a
 * request that changes data, and before the control plane acts, so what a
 * client read before it wrote (a copier's read, then its write) counts as
 * read when the write is placed.
 */
export function settleReadReplies(): void {
  for (const watch of holding) watch.check();
}

/**
 * Replies sent from the page cache that the client may not have read yet,
 * for exports that must know when it has (FileSpan.whenTaken): until then the
 * socket holds the file's pages, not a copy, and a write to them would reach
 * the client.
 *
 * Only a unix socket can tell. The kernel counts what its peer has not read
 * yet (SIOCOUTQ; its bookkeeping included, so it errs late, which is safe);
 * at zero every reply sent so far has been read, or the peer has closed and
 * its queue is gone. A TCP socket's count ends when the peer's kernel
 * acknowledges, and on loopback the peer's queue still holds our pages.
 *
 * While any reply is unread the socket is held by a descriptor of our own:
 * the pages stay in the peer's queue after our close, so Node's close must not
 * leave them unwatched. When Node closes the socket, the held descriptor shuts
 * it down (the peer reads what is queued, then the end of the stream) and is
 * watched until the peer has read it all or closed.
 */
export class UnreadFileReplies {
  private held: number | undefined;
  private waiting: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private socketClosed = false;

  constructor(
    private readonly socket: Socket,
    private readonly maxHeld = MAX_HELD_SOCKETS,
  ) {
    socket.once('close', () => {
      this.socketClosed = true;
      if (this.held !== undefined) this.tryShutdown(this.held);
      this.check();
    });
  }

  /**
   * Ready to watch a reply about to be sent: a unix socket, held by a
   * descriptor of our own. False when it cannot be (TCP, closed, no
   * descriptor to spare, MAX_HELD_SOCKETS held): such a reply must be sent
   * some other way.
   */
  ready(): boolean {
    if (this.socket.remoteFamily !== undefined || this.socketClosed) return false;
    if (this.held !== undefined) return true;
    const fd = socketFd(this.socket);
    if (fd === undefined || holding.size >= this.maxHeld) return false;
    try {
      this.held = holdDescriptor(fd);
    } catch {
      return false;
    }
    holding.add(this);
    return true;
  }

  /** `taken` runs once everything sent so far has been read by the peer, or the peer has closed. Call it, after ready(), once the reply's bytes are in the kernel. */
  add(taken: () => void): void {
    // Nothing sent since ready() can have let check() drop the hold (it runs on write completions, never in between).
    if (this.held === undefined) throw new Error('UnreadFileReplies.add without ready()');
    this.waiting.push(taken);
    this.timer ??= setInterval(() => this.check(), POLL_MS).unref();
  }

  /** Asks the kernel while replies wait to be read; lets the hold go once none do. Cheap, and a no-op with nothing held. */
  check(): void {
    if (this.held === undefined) return;
    if (this.waiting.length > 0) {
      let unread: number | undefined;
      try {
        unread = sendQueueBytes(this.held);
      } catch {
        // The kernel cannot say: keep waiting, never guess.
        return;
      }
      if (unread === undefined || unread > 0) return;
    }
    // All read, or nothing was sent after ready(): the hold is not needed.
    const taken = this.waiting.splice(0);
    clearInterval(this.timer);
    this.timer = undefined;
    closeDescriptor(this.held);
    this.held = undefined;
    holding.delete(this);
    for (const run of taken) run();
  }

  private tryShutdown(fd: number): void {
    try {
      shutdownSocket(fd);
    } catch {
      // Nothing to end: the peer is gone, and the count says so.
    }
  }
}
