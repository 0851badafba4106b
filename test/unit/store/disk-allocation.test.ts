import { closeSync, openSync, writeSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Disk, type AllocationExtent } from '../../../src/store/disk.js';
import { randomImage, scratchDir, sparseImage } from '../../helpers/scratch.js';

const KiB = 1024;
const MiB = 1024 * KiB;
/** Filesystems allocate whole blocks, so a written byte makes its whole 4 KiB block data. */
const FS_BLOCK = 4 * KiB;

/** Deliberately not a multiple of 4 KiB, with data in the last, partial block. */
const SIZE = 64 * MiB + 1000;
const WRITTEN = [
  { offset: 0, length: 100 },
  { offset: 5 * MiB + 100, length: 10_000 },
  { offset: 20 * MiB, length: 1 * MiB },
  { offset: SIZE - 10, length: 10 },
];
/** Far from everything written: these must be holes. */
const FAR_AWAY = [
  { offset: 1 * MiB, length: 3 * MiB },
  { offset: 8 * MiB, length: 10 * MiB },
  { offset: 30 * MiB, length: 30 * MiB },
];

const dir = scratchDir('nbd-remapper-alloc-');
let disk: Disk;

beforeAll(async () => {
  sparseImage(dir.file('sparse.img'), SIZE, WRITTEN);
  disk = await Disk.open(dir.file('sparse.img'), { readOnly: false });
});
afterAll(async () => {
  await disk.close();
  dir.cleanup();
});

function expectExactCover(extents: AllocationExtent[], offset: number, end: number): void {
  let position = offset;
  for (const extent of extents) {
    expect(extent.offset).toBe(position);
    expect(extent.length).toBeGreaterThan(0);
    position += extent.length;
  }
  expect(position).toBe(end);
  for (let i = 1; i < extents.length; i++) expect(extents[i].data).not.toBe(extents[i - 1].data);
}

function isData(extents: AllocationExtent[], offset: number): boolean | undefined {
  return extents.find((e) => offset >= e.offset && offset < e.offset + e.length)?.data;
}

describe('allocation', () => {
  it('maps a sparse file: written bytes are data, far-away regions are holes, block granularity at most', async () => {
    const extents = await disk.allocation(0, SIZE);
    expectExactCover(extents, 0, SIZE);
    for (const piece of WRITTEN) {
      for (const offset of [piece.offset, piece.offset + piece.length - 1]) expect(isData(extents, offset)).toBe(true);
    }
    for (const region of FAR_AWAY) {
      expect(extents.some((e) => e.data && e.offset < region.offset + region.length && region.offset < e.offset + e.length)).toBe(false);
    }
    // Every data extent is made of the filesystem blocks that were written, nothing more.
    const writtenBlocks = new Set<number>();
    for (const piece of WRITTEN) {
      for (let b = Math.floor(piece.offset / FS_BLOCK); b <= Math.floor((piece.offset + piece.length - 1) / FS_BLOCK); b++) writtenBlocks.add(b);
    }
    for (const extent of extents.filter((e) => e.data)) {
      for (let b = Math.floor(extent.offset / FS_BLOCK); b <= Math.floor((extent.offset + extent.length - 1) / FS_BLOCK); b++) {
        expect(writtenBlocks.has(b)).toBe(true);
      }
    }
  });

  it('answers any sub-range exactly as the whole map says, clipped to the disk size', async () => {
    const whole = await disk.allocation(0, SIZE);
    const clip = (offset: number, end: number): AllocationExtent[] =>
      whole
        .filter((e) => Math.max(e.offset, offset) < Math.min(e.offset + e.length, end))
        .map((e) => {
          const start = Math.max(e.offset, offset);
          return { offset: start, length: Math.min(e.offset + e.length, end) - start, data: e.data };
        });
    await fc.assert(
      fc.asyncProperty(fc.nat(SIZE + 5000), fc.nat(30 * MiB), async (offset, length) => {
        const end = Math.min(offset + length, SIZE);
        const extents = await disk.allocation(offset, length);
        if (end <= offset) expect(extents).toEqual([]);
        else expectExactCover(extents, offset, end);
        expect(extents).toEqual(clip(offset, end));
      }),
      { numRuns: 100 },
    );
  });

  it('clips at the end of the disk and answers empty ranges with nothing', async () => {
    const tail = await disk.allocation(SIZE - 100, 1 * MiB);
    expect(tail.reduce((sum, e) => sum + e.length, 0)).toBe(100);
    expect(await disk.allocation(SIZE, 10)).toEqual([]);
    expect(await disk.allocation(4096, 0)).toEqual([]);
  });

  it('sees data written through the disk at once', async () => {
    const scratch = dir.file('late.img');
    sparseImage(scratch, 16 * MiB, []);
    const late = await Disk.open(scratch, { readOnly: false });
    try {
      expect(await late.allocation(0, 16 * MiB)).toEqual([{ offset: 0, length: 16 * MiB, data: false }]);
      await late.write(9 * MiB + 5, Buffer.from('hello'));
      const extents = await late.allocation(0, 16 * MiB);
      expect(isData(extents, 9 * MiB + 5)).toBe(true);
      expect(isData(extents, 0)).toBe(false);
      expect(isData(extents, 15 * MiB)).toBe(false);
    } finally {
      await late.close();
    }
  });

  it('reports a file without holes as one data extent', async () => {
    const full = dir.file('full.img');
    randomImage(full, 3 * MiB + 3);
    const solid = await Disk.open(full, { readOnly: true });
    try {
      expect(await solid.allocation(17, 3 * MiB)).toEqual([{ offset: 17, length: 3 * MiB - 14, data: true }]);
      expect(await solid.isZeroRangeFast(0, 4096)).toBe(false);
    } finally {
      await solid.close();
    }
  });
});

describe('isZeroRangeFast', () => {
  it('is true exactly when the whole range is a hole', async () => {
    for (const region of FAR_AWAY) expect(await disk.isZeroRangeFast(region.offset, region.length)).toBe(true);
    for (const piece of WRITTEN) expect(await disk.isZeroRangeFast(piece.offset, 1)).toBe(false);
    // A hole with one written block inside it is not fast to zero.
    expect(await disk.isZeroRangeFast(4 * MiB, 2 * MiB)).toBe(false);
    expect(await disk.isZeroRangeFast(123, 0)).toBe(true);
  });

  it('turns false once data lands in the hole', async () => {
    const path = dir.file('fast.img');
    sparseImage(path, 8 * MiB, []);
    const d = await Disk.open(path, { readOnly: false });
    try {
      expect(await d.isZeroRangeFast(0, 8 * MiB)).toBe(true);
      const fd = openSync(path, 'r+');
      writeSync(fd, Buffer.from([1]), 0, 1, 6 * MiB);
      closeSync(fd);
      expect(await d.isZeroRangeFast(0, 8 * MiB)).toBe(false);
      expect(await d.isZeroRangeFast(0, 6 * MiB)).toBe(true);
    } finally {
      await d.close();
    }
  });
});
