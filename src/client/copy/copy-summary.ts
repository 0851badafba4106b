import { formatBytes } from '../../format/bytes.js';
import type { CopySummary } from './copy-engine.js';
import { formatRate } from '../../format/rate.js';

/** The line a finished copy ends with: how much, how it was sent, how long, how fast. */
export function formatCopySummary(summary: CopySummary): string {
  const seconds = (summary.elapsedMs / 1000).toFixed(summary.elapsedMs < 10_000 ? 2 : 1);
  const how = `${formatBytes(summary.dataBytes)} as data, ${formatBytes(summary.zeroBytes)} as zeroes`;
  const durability = summary.flushed ? 'destination flushed' : 'the destination offers no FLUSH, so durability is up to it';
  const resumed = summary.skippedBytes > 0 ? ` after ${formatBytes(summary.skippedBytes)} an earlier run had copied` : '';
  const confirmed = summary.checkpoints > 0 ? `; ${summary.checkpoints} checkpoint${summary.checkpoints === 1 ? '' : 's'}` : '';
  return `copied ${formatBytes(summary.totalBytes)}${resumed} (${summary.totalBytes} bytes; ${how}) in ${seconds} s, ${formatRate(summary.totalBytes, summary.elapsedMs)}; ${durability}${confirmed}`;
}
