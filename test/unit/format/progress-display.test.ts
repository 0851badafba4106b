import { describe, expect, it } from 'vitest';
import { BLOCKS, ProgressDisplay, type ProgressUnit } from '../../../src/format/progress-display.js';

const MiB = 1024 * 1024;

function stream(isTTY: boolean): { isTTY: boolean; text: string; write(t: string): void } {
  return {
    isTTY,
    text: '',
    write(t: string) {
      this.text += t;
    },
  };
}

/** A display writing to a string, on a clock the test sets with `at`. */
function clocked(isTTY: boolean, label: string, unit?: ProgressUnit) {
  let now = 0;
  const out = stream(isTTY);
  const progress = new ProgressDisplay(out, label, unit, () => now);
  return {
    out,
    progress,
    at(ms: number): void {
      now = ms;
    },
  };
}

describe('ProgressDisplay', () => {
  it('redraws a bar in place on a terminal, at most every 100 ms of the clock it is given, and ends the line', () => {
    const { out, progress, at } = clocked(true, 'copy');
    at(50);
    progress.update(1 * MiB, 10 * MiB);
    expect(out.text).toBe('');
    at(1000);
    progress.update(5 * MiB, 10 * MiB);
    expect(out.text).toBe(`\rcopy [${'#'.repeat(15)}${'.'.repeat(15)}] 50.0%  5.0 MiB of 10 MiB  5.2 MB/s  ~1 s left\x1b[K`);
    at(1010);
    progress.update(10 * MiB, 10 * MiB);
    expect(out.text.endsWith(`\rcopy [${'#'.repeat(30)}] 100.0%  10 MiB of 10 MiB  10.4 MB/s\x1b[K`)).toBe(true);
    progress.end();
    expect(out.text.endsWith('\n')).toBe(true);
  });

  it('writes a plain line every 5 s of the clock otherwise', () => {
    const { out, progress, at } = clocked(false, 'copy');
    at(4999);
    progress.update(1 * MiB, 4 * MiB);
    expect(out.text).toBe('');
    at(5000);
    progress.update(2 * MiB, 4 * MiB);
    at(6000);
    progress.update(3 * MiB, 4 * MiB);
    expect(out.text).toBe('copy: 2.0 MiB of 4.0 MiB (50.0%), 0.4 MB/s\n');
    // Work that ends short says where it stopped.
    progress.end();
    expect(out.text).toBe('copy: 2.0 MiB of 4.0 MiB (50.0%), 0.4 MB/s\ncopy: stopped at 3.0 MiB of 4.0 MiB (75.0%)\n');
  });

  it('in a log, the line at completion is always written, once', () => {
    const { out: long, progress: finish, at } = clocked(false, 'finish', BLOCKS);
    at(6000);
    finish.update(10, 40);
    at(7000);
    finish.update(40, 40);
    finish.update(40, 40);
    finish.end();
    expect(long.text).toBe('finish: 10/40 blocks (25.0%)\nfinish: 40/40 blocks (100.0%)\n');

    const { out: short, progress: quick, at: atQuick } = clocked(false, 'finish', BLOCKS);
    atQuick(300);
    quick.update(20, 40);
    quick.update(40, 40);
    quick.end();
    expect(short.text).toBe('finish: 40/40 blocks (100.0%)\n');
  });

  it('counts blocks without a rate on a terminal', () => {
    const { out, progress, at } = clocked(true, 'finish', BLOCKS);
    at(2000);
    progress.update(1, 4);
    expect(out.text).toBe(`\rfinish [${'#'.repeat(8)}${'.'.repeat(22)}] 25.0%  1/4 blocks  ~6 s left\x1b[K`);
  });
});
