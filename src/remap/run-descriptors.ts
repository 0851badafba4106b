import type { StatusDescriptor } from 'nbd-protocol-ts';

/** A block status answer describes at most this many runs (the reply may cover less than asked, as the spec allows). */
export const MAX_STATUS_RUNS = 1024;

/**
 * Block status descriptors for the bytes [offset, end) of a view of B-byte
 * blocks: `inside` flags over the block `runs` (sorted, disjoint), `outside`
 * flags between them. Past MAX_STATUS_RUNS runs the answer stops at the end
 * of the last one described.
 */
export function runDescriptors(
  offset: number,
  end: number,
  B: number,
  runs: ReadonlyArray<{ start: number; end: number }>,
  inside: number,
  outside: number,
): StatusDescriptor[] {
  let stop = end;
  let described = runs;
  if (runs.length > MAX_STATUS_RUNS) {
    described = runs.slice(0, MAX_STATUS_RUNS);
    stop = Math.min(end, described[described.length - 1].end * B);
  }
  const out: StatusDescriptor[] = [];
  let at = offset;
  for (const run of described) {
    const from = Math.max(at, run.start * B);
    const to = Math.min(stop, run.end * B);
    if (from > at) out.push({ length: from - at, flags: outside });
    if (to > from) out.push({ length: to - from, flags: inside });
    at = Math.max(at, to);
  }
  if (stop > at) out.push({ length: stop - at, flags: outside });
  return out;
}
