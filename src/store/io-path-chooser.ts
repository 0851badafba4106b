/**
 * Chooses, per request, between a synchronous read on the event loop and an
 * asynchronous one through libuv's thread pool.
 *
 * Measured on these machines (shared/PERFORMANCE.md): small page-cached reads
 * answer twice as fast with readSync, because the thread-pool hop, not the
 * copy, dominates. But a read that misses the page cache blocks the event loop
 * for a device's latency, stalling every connection. So sync reads are used
 * only while they keep proving fast: one slow sync read switches to the thread
 * pool for a cool-down, after which a sync read is tried again.
 */
export interface IoPathPolicy {
  /** Requests larger than this always go to the thread pool. */
  maxSyncBytes: number;
  /** A sync read slower than this (nanoseconds) counts as a page-cache miss. */
  slowSyncNs: number;
  /** How many requests go to the thread pool after a slow sync read. */
  coolDownRequests: number;
}

export const DEFAULT_IO_PATH_POLICY: IoPathPolicy = {
  maxSyncBytes: 64 * 1024,
  slowSyncNs: 500_000,
  coolDownRequests: 256,
};

export class IoPathChooser {
  private asyncLeft = 0;

  constructor(private readonly policy: IoPathPolicy = DEFAULT_IO_PATH_POLICY) {}

  useSync(length: number): boolean {
    if (length > this.policy.maxSyncBytes) return false;
    if (this.asyncLeft > 0) {
      this.asyncLeft--;
      return false;
    }
    return true;
  }

  /** Report how long a sync request took. */
  recordSync(elapsedNs: number): void {
    if (elapsedNs > this.policy.slowSyncNs) this.asyncLeft = this.policy.coolDownRequests;
  }
}
