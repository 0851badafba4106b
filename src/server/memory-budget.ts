/**
 * Request data of every connection together (G8): READ buffers until their
 * reply has left, WRITE payloads from their allocation until the request is
 * done. Each connection's own limits bound one client; this bounds many. A
 * client that never reads its replies would otherwise pin up to its queue
 * limits on each of its connections (16 such connections held 1 GiB).
 *
 * Over the limit a connection takes no new request, except that one with
 * nothing reserved may still take one of up to GUARANTEED_REQUEST_BYTES: a
 * client whose memory is held elsewhere still progresses, and the excess is
 * at most that much per connection.
 */
/** 2 MiB: the largest request of the common clients — the kernel's (1.25 MiB by default), qemu-img's, nbdcopy's. */
export const GUARANTEED_REQUEST_BYTES = 2 * 1024 * 1024;

export class MemoryBudget {
  private used = 0;
  /** Connections waiting for room, woken in the order they started waiting. */
  private readonly waiting = new Set<() => void>();

  constructor(readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) throw new RangeError(`the memory budget must be a positive number of bytes, got ${maxBytes}`);
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Some connection waits for room: memory others hold without progress is worth taking back (NbdServer). */
  get contended(): boolean {
    return this.waiting.size > 0;
  }

  /** At or over the limit: connections look at what their next request needs (allows). */
  get exhausted(): boolean {
    return this.used >= this.maxBytes;
  }

  /** A connection holding `reserved` bytes may take a request needing `bytes` now. */
  allows(bytes: number, reserved: number): boolean {
    return bytes === 0 || this.used < this.maxBytes || (reserved === 0 && bytes <= GUARANTEED_REQUEST_BYTES);
  }

  take(bytes: number): void {
    this.used += bytes;
  }

  give(bytes: number): void {
    this.used -= bytes;
    if (this.waiting.size === 0) return;
    for (const wake of [...this.waiting]) {
      if (this.used >= this.maxBytes) return;
      this.waiting.delete(wake);
      wake();
    }
  }

  /** `wake` runs once there is room again (once per wait). */
  wait(wake: () => void): void {
    this.waiting.add(wake);
  }

  cancel(wake: () => void): void {
    this.waiting.delete(wake);
  }
}
