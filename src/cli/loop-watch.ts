import type { Logger } from '../log/logger.js';
import type { Disk } from '../store/disk.js';
import { loopAttachedError } from '../store/disk-errors.js';

/** How often the watch looks: a readdir of /sys/block and a few small reads, measured ~0.2 ms with 8 loop devices. */
export const LOOP_WATCH_INTERVAL_MS = 2000;

export interface LoopWatch {
  /** What is wrong now (for `status`), or undefined. */
  problem(): string | undefined;
  stop(): void;
}

/**
 * Disk.open refuses a disk that a loop device also exposes; this looks again
 * while it is served, since `losetup` ignores the server's lock. A loop
 * device attached now cannot be refused, but a filesystem mounted from it
 * would be written behind the server's back and read around the source
 * export: the log says so at once (and `status` while it lasts), naming the
 * device and how to let go of it.
 */
export function watchLoopAttachments(disk: Pick<Disk, 'path' | 'otherLoopAttachments'>, log: Logger, everyMs = LOOP_WATCH_INTERVAL_MS): LoopWatch {
  let seen = '';
  let problem: string | undefined;
  let looking = false;
  const look = async (): Promise<void> => {
    const found = await disk.otherLoopAttachments();
    const devices = found?.attachments.map((a) => `${a.device}@${a.mountedAt.join(',')}`).join(' ') ?? '';
    if (devices === seen) return;
    seen = devices;
    if (found === undefined) {
      problem = undefined;
      log.info(`no loop device other than the disk exposes ${disk.path} any more`);
      return;
    }
    const error = loopAttachedError(disk.path, found.attachments, found.backingFile);
    problem = `${error.message}; fix: ${error.fix}`;
    log.error(`while serving: ${error.message}`);
    log.error(`  fix: ${error.fix}`);
  };
  // One look at a time: a backing file's stat that hangs holds one thread-pool thread, not one per interval.
  const timer = setInterval(() => {
    if (looking) return;
    looking = true;
    look()
      .catch((err: unknown) => log.debug(`loop device look failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => (looking = false));
  }, everyMs);
  timer.unref();
  return {
    problem: () => problem,
    stop: () => clearInterval(timer),
  };
}
