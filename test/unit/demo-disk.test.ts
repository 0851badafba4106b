import { existsSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_DISK, demoBlock, demoBlockHeader, ensureDemoDisk } from '../../src/cli/demo-disk.js';
import { Disk } from '../../src/store/disk.js';
import { scratchDir } from '../helpers/scratch.js';

const MiB = 1024 * 1024;
const dir = scratchDir('nbd-remapper-demo-');
let image: Buffer;
let imagePath: string;
let firstCall: { path: string; created: boolean };

beforeAll(async () => {
  // A directory that does not exist yet, as on a first run with an empty cache.
  firstCall = await ensureDemoDisk(dir.file('cache/nbd-remapper/demo.img'));
  imagePath = firstCall.path;
  image = readFileSync(imagePath);
});
afterAll(() => dir.cleanup());

interface MbrEntry {
  status: number;
  type: number;
  firstLba: number;
  sectors: number;
}

function mbrEntries(sector: Buffer): MbrEntry[] {
  return [0, 1, 2, 3].map((slot) => {
    const at = 446 + slot * 16;
    return { status: sector[at], type: sector[at + 4], firstLba: sector.readUInt32LE(at + 8), sectors: sector.readUInt32LE(at + 12) };
  });
}

describe('the demo disk layout', () => {
  it('has two 1 MiB aligned primary partitions inside the disk, without overlap', () => {
    expect(DEMO_DISK.partitions).toHaveLength(2);
    let previousEnd = 0;
    for (const p of DEMO_DISK.partitions) {
      expect(p.type).toBe(0x83);
      expect(p.offset % MiB).toBe(0);
      expect(p.length % MiB).toBe(0);
      expect(p.offset).toBeGreaterThanOrEqual(Math.max(previousEnd, MiB));
      previousEnd = p.offset + p.length;
    }
    expect(previousEnd).toBeLessThanOrEqual(DEMO_DISK.size);
  });

  it('puts data only inside partitions, block aligned, and leaves most of the disk as holes', () => {
    const inPartition = (offset: number, end: number) => DEMO_DISK.partitions.some((p) => offset >= p.offset && end <= p.offset + p.length);
    let total = 0;
    for (const r of DEMO_DISK.dataRegions) {
      expect(r.offset % DEMO_DISK.blockSize).toBe(0);
      expect(r.length % DEMO_DISK.blockSize).toBe(0);
      expect(inPartition(r.offset, r.offset + r.length)).toBe(true);
      total += r.length;
    }
    expect(total).toBeLessThan(DEMO_DISK.size / 8);
  });
});

describe('ensureDemoDisk', () => {
  it('creates the image at an absolute path with the declared size', () => {
    expect(firstCall.created).toBe(true);
    expect(isAbsolute(firstCall.path)).toBe(true);
    expect(image.length).toBe(DEMO_DISK.size);
    expect(existsSync(`${imagePath}.tmp`)).toBe(false);
  });

  it('writes an MBR that describes the partitions', () => {
    const mbr = image.subarray(0, 512);
    expect(mbr[510]).toBe(0x55);
    expect(mbr[511]).toBe(0xaa);
    expect(mbr.readUInt32LE(440)).toBe(DEMO_DISK.diskSignature);
    const entries = mbrEntries(mbr);
    DEMO_DISK.partitions.forEach((p, slot) => {
      expect(entries[slot]).toEqual({ status: 0, type: p.type, firstLba: p.offset / 512, sectors: p.length / 512 });
    });
    for (const unused of entries.slice(DEMO_DISK.partitions.length)) expect(unused).toEqual({ status: 0, type: 0, firstLba: 0, sectors: 0 });
    // The rest of the first MiB (before partition 1) is empty.
    expect(image.subarray(512, MiB).equals(Buffer.alloc(MiB - 512))).toBe(true);
  });

  it('fills each data region with self-describing blocks and leaves zeroes elsewhere', () => {
    for (const r of DEMO_DISK.dataRegions) {
      for (let offset = r.offset; offset < r.offset + r.length; offset += DEMO_DISK.blockSize) {
        const index = offset / DEMO_DISK.blockSize;
        const block = image.subarray(offset, offset + DEMO_DISK.blockSize);
        expect(block.toString('ascii', 0, 40).startsWith(`nbd-remapper demo block ${index}\n`)).toBe(true);
        expect(block.equals(demoBlock(index))).toBe(true);
      }
    }
    const isInRegion = (offset: number) => offset < 512 || DEMO_DISK.dataRegions.some((r) => offset >= r.offset && offset < r.offset + r.length);
    for (let offset = 0; offset < DEMO_DISK.size; offset += DEMO_DISK.blockSize) {
      if (isInRegion(offset)) continue;
      const block = image.subarray(offset, offset + DEMO_DISK.blockSize);
      if (!block.equals(Buffer.alloc(DEMO_DISK.blockSize))) throw new Error(`block at ${offset} outside the data regions is not zero`);
    }
  });

  it('gives every block its own content, so a misplaced block is noticed', () => {
    expect(demoBlockHeader(7)).toBe('nbd-remapper demo block 7\n');
    expect(demoBlock(7).equals(demoBlock(7))).toBe(true);
    expect(demoBlock(7).equals(demoBlock(8))).toBe(false);
    // Beyond the header too: a block must not match another block shifted by a few bytes.
    const a = demoBlock(300);
    const b = demoBlock(301);
    expect(a.subarray(100).equals(b.subarray(100))).toBe(false);
    expect(a.subarray(100, 4000).equals(a.subarray(101, 4001))).toBe(false);
  });

  it('is sparse: the file occupies a small part of its size, and its holes are where the layout says', async () => {
    const occupied = statSync(imagePath).blocks * 512;
    const dataBytes = DEMO_DISK.dataRegions.reduce((sum, r) => sum + r.length, 0);
    expect(occupied).toBeLessThan(DEMO_DISK.size / 8);
    expect(occupied).toBeGreaterThanOrEqual(dataBytes);
    const disk = await Disk.open(imagePath, { readOnly: true });
    try {
      const extents = await disk.allocation(0, disk.size);
      const holes = extents.filter((e) => !e.data).reduce((sum, e) => sum + e.length, 0);
      expect(holes).toBeGreaterThan(DEMO_DISK.size / 2);
      for (const r of DEMO_DISK.dataRegions) {
        expect(await disk.isZeroRangeFast(r.offset, DEMO_DISK.blockSize)).toBe(false);
      }
      // The tail after partition 2 is a hole.
      const lastEnd = DEMO_DISK.partitions[DEMO_DISK.partitions.length - 1];
      expect(await disk.isZeroRangeFast(lastEnd.offset + lastEnd.length, DEMO_DISK.size - lastEnd.offset - lastEnd.length)).toBe(true);
    } finally {
      await disk.close();
    }
  });

  it('leaves an existing image alone on the next call', async () => {
    const before = statSync(imagePath);
    const again = await ensureDemoDisk(imagePath);
    expect(again).toEqual({ path: imagePath, created: false });
    const after = statSync(imagePath);
    expect({ ino: after.ino, mtimeMs: after.mtimeMs, size: after.size }).toEqual({ ino: before.ino, mtimeMs: before.mtimeMs, size: before.size });
  });

  it('replaces the leftover of an interrupted run, and two runs at once create one image', async () => {
    mkdirSync(dir.file('second'));
    const path = dir.file('second/demo.img');
    writeFileSync(`${path}.tmp`, Buffer.alloc(70000, 0xff));
    const results = await Promise.all([ensureDemoDisk(path), ensureDemoDisk(path)]);
    expect(results.map((r) => r.created).sort()).toEqual([false, true]);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(readFileSync(path).equals(image)).toBe(true);
  });
});
