import { describe, expect, it } from 'vitest';
import { CopyProgress } from '../../../src/client/copy/copy-progress.js';
import { formatCopySummary } from '../../../src/client/copy/copy-summary.js';

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

describe('CopyProgress', () => {
  it('redraws a bar in place on a terminal, at most every 100 ms of the clock it is given, and ends the line', () => {
    let now = 0;
    const out = stream(true);
    const progress = new CopyProgress(out, () => now);
    now = 50;
    progress.update(1 * MiB, 10 * MiB);
    expect(out.text).toBe('');
    now = 1000;
    progress.update(5 * MiB, 10 * MiB);
    expect(out.text).toBe(`\rcopy [${'#'.repeat(15)}${'.'.repeat(15)}] 50.0%  5.0 MiB of 10 MiB  5.2 MB/s  ~1 s left\x1b[K`);
    now = 1010;
    progress.update(10 * MiB, 10 * MiB);
    expect(out.text.endsWith(`\rcopy [${'#'.repeat(30)}] 100.0%  10 MiB of 10 MiB  10.4 MB/s\x1b[K`)).toBe(true);
    progress.end();
    expect(out.text.endsWith('\n')).toBe(true);
  });

  it('writes a plain line every 5 s of the clock otherwise', () => {
    let now = 0;
    const out = stream(false);
    const progress = new CopyProgress(out, () => now);
    now = 4999;
    progress.update(1 * MiB, 4 * MiB);
    expect(out.text).toBe('');
    now = 5000;
    progress.update(2 * MiB, 4 * MiB);
    now = 6000;
    progress.update(3 * MiB, 4 * MiB);
    expect(out.text).toBe('copy: 2.0 MiB of 4.0 MiB (50.0%), 0.4 MB/s\n');
    progress.end();
    expect(out.text).toBe('copy: 2.0 MiB of 4.0 MiB (50.0%), 0.4 MB/s\n');
  });
});

describe('formatCopySummary', () => {
  it('says how much, how it was sent, how long and how fast', () => {
    const plain = { skippedBytes: 0, checkpoints: 0 };
    expect(formatCopySummary({ ...plain, totalBytes: 8 * MiB, dataBytes: 6 * MiB, zeroBytes: 2 * MiB, chunks: 8, flushed: true, elapsedMs: 2000 })).toBe(
      'copied 8.0 MiB (8388608 bytes; 6.0 MiB as data, 2.0 MiB as zeroes) in 2.00 s, 4.2 MB/s; destination flushed',
    );
    expect(formatCopySummary({ ...plain, totalBytes: 0, dataBytes: 0, zeroBytes: 0, chunks: 0, flushed: false, elapsedMs: 0 })).toMatch(/^copied 0 B \(0 bytes; .*- MB\/s; the destination offers no FLUSH/);
  });

  it('says what a resumed copy skipped and how many checkpoints it took', () => {
    expect(formatCopySummary({ totalBytes: 6 * MiB, skippedBytes: 2 * MiB, checkpoints: 3, dataBytes: 6 * MiB, zeroBytes: 0, chunks: 6, flushed: true, elapsedMs: 2000 })).toBe(
      'copied 6.0 MiB after 2.0 MiB an earlier run had copied (6291456 bytes; 6.0 MiB as data, 0 B as zeroes) in 2.00 s, 3.1 MB/s; destination flushed; 3 checkpoints',
    );
  });
});
