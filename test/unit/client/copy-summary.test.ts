import { describe, expect, it } from 'vitest';
import { formatCopySummary } from '../../../src/client/copy/copy-summary.js';

const MiB = 1024 * 1024;

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
