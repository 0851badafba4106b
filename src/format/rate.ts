/** Throughput in decimal megabytes per second, as dd and nbdcopy report it; "-" before any time has passed. */
export function formatRate(bytes: number, elapsedMs: number): string {
  if (elapsedMs <= 0) return '- MB/s';
  const rate = bytes / 1e6 / (elapsedMs / 1000);
  return `${rate >= 100 ? rate.toFixed(0) : rate.toFixed(1)} MB/s`;
}
