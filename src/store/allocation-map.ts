/** A piece of the disk and whether it holds data or is a hole (reads as zeroes, occupies nothing). */
export interface AllocationExtent {
  offset: number;
  length: number;
  data: boolean;
}

/** lseek(2) whence values on Linux; Node and fs-ext do not export them. */
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;

/** lseek on the disk's descriptor: resolves to the offset the kernel found. */
export type SeekFn = (position: number, whence: typeof SEEK_DATA | typeof SEEK_HOLE) => Promise<number>;

function errnoCode(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

/** Filesystems (and kernels) that cannot answer SEEK_DATA/SEEK_HOLE say so with these. */
function isUnsupported(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'EINVAL' || code === 'EOPNOTSUPP' || code === 'ENOTSUP';
}

function push(extents: AllocationExtent[], offset: number, end: number, data: boolean): void {
  if (end <= offset) return;
  const last = extents[extents.length - 1];
  if (last !== undefined && last.data === data && last.offset + last.length === offset) last.length += end - offset;
  else extents.push({ offset, length: end - offset, data });
}

/**
 * The data/hole map of [start, end), walked with SEEK_DATA and SEEK_HOLE. The
 * extents are contiguous and cover exactly [start, end) — or, once there are
 * `maxExtents` of them, [start, where they end). Whenever the answer
 * is uncertain (no support, a file changing under us) the rest is reported as
 * data: calling a hole data only costs a copy, calling data a hole loses it.
 */
export async function mapAllocation(seek: SeekFn, start: number, end: number, maxExtents = Infinity): Promise<AllocationExtent[]> {
  const extents: AllocationExtent[] = [];
  let position = start;
  while (position < end) {
    // Enough for the caller (a block status answer may cover less than asked): they cover [start, position).
    if (extents.length >= maxExtents) return extents;
    let dataStart: number;
    try {
      dataStart = await seek(position, SEEK_DATA);
    } catch (err) {
      // ENXIO: no data at or after position (holes run to end of file and beyond).
      if (errnoCode(err) === 'ENXIO') push(extents, position, end, false);
      else if (isUnsupported(err)) push(extents, position, end, true);
      else throw err;
      return extents;
    }
    if (dataStart < position) dataStart = position;
    push(extents, position, Math.min(dataStart, end), false);
    position = dataStart;
    if (position >= end) break;

    let holeStart: number;
    try {
      holeStart = await seek(position, SEEK_HOLE);
    } catch (err) {
      if (errnoCode(err) === 'ENXIO' || isUnsupported(err)) {
        // The file shrank between the two calls or support vanished: say data, the safe answer.
        push(extents, position, end, true);
        return extents;
      }
      throw err;
    }
    // A hole right where data was just found means the file changed under us; say data and stop.
    if (holeStart <= position) holeStart = end;
    push(extents, position, Math.min(holeStart, end), true);
    position = holeStart;
  }
  return extents;
}
