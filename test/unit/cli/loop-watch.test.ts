import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { watchLoopAttachments } from '../../../src/cli/loop-watch.js';
import { createLogger } from '../../../src/log/logger.js';
import type { LoopAttachment } from '../../../src/store/loop-attachments.js';

type Found = { attachments: LoopAttachment[]; backingFile?: string } | undefined;

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

function recording(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: 'debug', write: (line) => lines.push(line) }) };
}

it('says once when a loop device appears, keeps it for status while it lasts, and says when it is gone', async () => {
  let now: Found;
  const disk = { path: '/srv/disk.img', otherLoopAttachments: () => Promise.resolve(now) };
  const { lines, log } = recording();
  const watch = watchLoopAttachments(disk, log, 1000);
  await vi.advanceTimersByTimeAsync(3000);
  expect(lines).toEqual([]);
  expect(watch.problem()).toBeUndefined();

  now = { attachments: [{ device: '/dev/loop4', readOnly: false, mountedAt: ['/mnt/old'] }] };
  await vi.advanceTimersByTimeAsync(3000);
  expect(lines.filter((l) => l.includes('error'))).toHaveLength(2); // the cause and its fix, once
  expect(lines.join('\n')).toMatch(/error while serving: the image \/srv\/disk\.img is also attached as a loop device: \/dev\/loop4, mounted at \/mnt\/old\./);
  expect(lines.join('\n')).toMatch(/fix: unmount it \(umount \/mnt\/old\), then detach it \(losetup -d \/dev\/loop4\)/);
  expect(watch.problem()).toMatch(/^the image \/srv\/disk\.img is also attached .*; fix: unmount it/);

  now = undefined;
  await vi.advanceTimersByTimeAsync(1000);
  expect(lines.at(-1)).toMatch(/info  no loop device other than the disk exposes \/srv\/disk\.img any more/);
  expect(watch.problem()).toBeUndefined();
  watch.stop();
});

it('G9: a look that never returns (a backing file on a hung file system) is not started again on top of itself', async () => {
  const looks = vi.fn(() => new Promise<Found>(() => undefined));
  const { log } = recording();
  const watch = watchLoopAttachments({ path: '/srv/disk.img', otherLoopAttachments: looks }, log, 1000);
  await vi.advanceTimersByTimeAsync(60_000);
  expect(looks).toHaveBeenCalledTimes(1);
  watch.stop();
});

it('a failed look is logged at debug and the next one runs', async () => {
  let calls = 0;
  const disk = {
    path: '/srv/disk.img',
    otherLoopAttachments: (): Promise<Found> => (++calls === 1 ? Promise.reject(new Error('sysfs went away')) : Promise.resolve(undefined)),
  };
  const { lines, log } = recording();
  const watch = watchLoopAttachments(disk, log, 1000);
  await vi.advanceTimersByTimeAsync(2000);
  expect(lines.join('\n')).toMatch(/debug loop device look failed: sysfs went away/);
  expect(calls).toBe(2);
  watch.stop();
});
