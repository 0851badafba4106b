import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { mapAllocation, SEEK_DATA, SEEK_HOLE, type AllocationExtent, type SeekFn } from '../../../src/store/allocation-map.js';

function errno(code: string): Error {
  return Object.assign(new Error(code), { code });
}

/**
 * lseek(SEEK_DATA/SEEK_HOLE) as Linux answers it for a file of `fileSize`
 * bytes whose data is `dataRanges` (sorted, disjoint): end of file is a hole,
 * and ENXIO at or beyond it.
 */
function modelSeek(fileSize: number, dataRanges: Array<[number, number]>): SeekFn {
  return async (position, whence) => {
    if (position >= fileSize) throw errno('ENXIO');
    if (whence === SEEK_DATA) {
      for (const [start, end] of dataRanges) {
        if (position < end) return Math.max(start, position);
      }
      throw errno('ENXIO');
    }
    for (const [start, end] of dataRanges) {
      if (position >= start && position < end) return end;
    }
    return position;
  };
}

/** The expected answer: every byte of [start, end) classified, then run-length encoded. */
function modelExtents(fileSize: number, dataRanges: Array<[number, number]>, start: number, end: number): AllocationExtent[] {
  const extents: AllocationExtent[] = [];
  for (let offset = start; offset < end; offset++) {
    const data = offset < fileSize && dataRanges.some(([s, e]) => offset >= s && offset < e);
    const last = extents[extents.length - 1];
    if (last && last.data === data) last.length++;
    else extents.push({ offset, length: 1, data });
  }
  return extents;
}

/** Sorted, disjoint, non-adjacent data ranges inside [0, fileSize). */
const fileModel = fc
  .record({ fileSize: fc.integer({ min: 1, max: 400 }), cuts: fc.uniqueArray(fc.integer({ min: 0, max: 400 }), { maxLength: 12 }) })
  .map(({ fileSize, cuts }) => {
    const points = [...new Set(cuts.filter((c) => c <= fileSize))].sort((a, b) => a - b);
    const ranges: Array<[number, number]> = [];
    for (let i = 0; i + 1 < points.length; i += 2) ranges.push([points[i], points[i + 1]]);
    return { fileSize, ranges };
  });

describe('mapAllocation', () => {
  it('matches a byte-by-byte model for any file and any query, including past end of file', async () => {
    await fc.assert(
      fc.asyncProperty(fileModel, fc.nat(450), fc.nat(450), async ({ fileSize, ranges }, a, b) => {
        const [start, end] = a <= b ? [a, b] : [b, a];
        const extents = await mapAllocation(modelSeek(fileSize, ranges), start, end);
        expect(extents).toEqual(modelExtents(fileSize, ranges, start, end));
      }),
      { numRuns: 300 },
    );
  });

  it('reports everything as data where the filesystem cannot answer', async () => {
    const unsupported: SeekFn = async () => {
      throw errno('EINVAL');
    };
    expect(await mapAllocation(unsupported, 100, 5000)).toEqual([{ offset: 100, length: 4900, data: true }]);
  });

  it('says data, and stops, when the file changes between the two seeks', async () => {
    // SEEK_DATA finds data at 10, then SEEK_HOLE claims a hole right there: the file was punched meanwhile.
    const racing: SeekFn = async (position, whence) => (whence === SEEK_DATA ? 10 : position);
    expect(await mapAllocation(racing, 0, 100)).toEqual([
      { offset: 0, length: 10, data: false },
      { offset: 10, length: 90, data: true },
    ]);
    // ENXIO on SEEK_HOLE: the file shrank after SEEK_DATA found data.
    const shrinking: SeekFn = async (_position, whence) => {
      if (whence === SEEK_HOLE) throw errno('ENXIO');
      return 20;
    };
    expect(await mapAllocation(shrinking, 0, 50)).toEqual([
      { offset: 0, length: 20, data: false },
      { offset: 20, length: 30, data: true },
    ]);
  });

  it('passes real I/O errors on', async () => {
    const broken: SeekFn = async () => {
      throw errno('EIO');
    };
    await expect(mapAllocation(broken, 0, 10)).rejects.toMatchObject({ code: 'EIO' });
  });

  it('returns nothing for an empty range', async () => {
    const never: SeekFn = async () => {
      throw new Error('must not be called');
    };
    expect(await mapAllocation(never, 7, 7)).toEqual([]);
  });
});
