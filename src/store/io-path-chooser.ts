/**
 * Chooses, per request, between a synchronous read on the event loop and an
 * asynchronous one through libuv's thread pool — where reads that never wait
 * for the device (preadv2 RWF_NOWAIT, Disk.readInto) are not offered: without
 * the linux-io addon, or on a file system that refuses them (tmpfs). Its
 * size bound applies to those reads too.
 *
 * Measured on these machines (shared/PERFORMANCE.md, and nbdcopy -C 1 of a
 * page-cached 1 GiB image): page-cached reads answer faster with readSync at
 * every size we serve. Small ones because the thread-pool hop, not the copy,
 * dominates; large ones (256 KiB, nbdcopy's default) because on two cores the
 * hop's thread wake-ups compete with the client for CPU — sync reads up to
 * 1 MiB raised sequential reads from ~0.63× to ~0.75× nbdkit. A read that
 * misses the page cache, though, blocks the event loop for a device's
 * latency, stalling every connection. So sync reads are used only while they
 * keep proving fast: one slow sync read switches to the thread pool for a
 * cool-down, after which a sync read is tried again.
 */
export interface IoPathPolicy {
  /** Requests larger than this always go to the thread pool. */
  maxSyncBytes: number;
  /** A sync read slower than this (nanoseconds) plus `slowSyncNsPerByte` per byte counts as a page-cache miss. */
  slowSyncNs: number;
  /** Allowance per byte read (ns): a page-cached copy runs at several GB/s, a device read far slower. */
  slowSyncNsPerByte: number;
  /** How many requests go to the thread pool after a slow sync read. */
  coolDownRequests: number;
}

export const DEFAULT_IO_PATH_POLICY: IoPathPolicy = {
  maxSyncBytes: 1024 * 1024,
  slowSyncNs: 500_000,
  // 1 ns per byte = 1 GB/s: 256 KiB may take ~760 µs, 1 MiB ~1.55 ms before it counts as a miss.
  slowSyncNsPerByte: 1,
  coolDownRequests: 256,
};

export class IoPathChooser {
  private asyncLeft = 0;

  constructor(private readonly policy: IoPathPolicy = DEFAULT_IO_PATH_POLICY) {}

  /** A read of this size may be copied on the event loop (when it need not wait for the device). */
  fitsEventLoop(length: number): boolean {
    return length <= this.policy.maxSyncBytes;
  }

  useSync(length: number): boolean {
    if (!this.fitsEventLoop(length)) return false;
    if (this.asyncLeft > 0) {
      this.asyncLeft--;
      return false;
    }
    return true;
  }

  /** Report how long a sync request of `length` bytes took. */
  recordSync(elapsedNs: number, length = 0): void {
    if (elapsedNs > this.policy.slowSyncNs + length * this.policy.slowSyncNsPerByte) this.asyncLeft = this.policy.coolDownRequests;
  }
}
