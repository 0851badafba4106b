import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MapError, type MapRule } from '../../../src/remap/map-error.js';
import { MAX_MAP_EXTENTS, RemapMap, type MapExtent } from '../../../src/remap/map.js';

const B = 4096;
const DISK = 64 * B;

function refusal(extents: unknown, diskSize = DISK, blockSize = B): MapError {
  try {
    RemapMap.parse(typeof extents === 'string' ? extents : { extents }, diskSize, blockSize);
  } catch (err) {
    expect(err).toBeInstanceOf(MapError);
    return err as MapError;
  }
  throw new Error('the map was accepted');
}

describe('map validation', () => {
  const cases: Array<{ name: string; extents: MapExtent[]; rule: MapRule; index: number; says: RegExp }> = [
    {
      name: 'gap in the destination',
      extents: [
        { destOffset: 0, length: B, diskOffset: 0 },
        { destOffset: 2 * B, length: B, diskOffset: B },
      ],
      rule: 'gap',
      index: 1,
      says: /extent 1 .*gap/,
    },
    {
      name: 'first extent not at destination 0',
      extents: [{ destOffset: B, length: B, diskOffset: 0 }],
      rule: 'gap',
      index: 0,
      says: /extent 0 .*gap/,
    },
    {
      name: 'overlap in the destination',
      extents: [
        { destOffset: 0, length: 2 * B, diskOffset: 0 },
        { destOffset: B, length: B, diskOffset: 8 * B },
      ],
      rule: 'overlap-destination',
      index: 1,
      says: /extent 1 .*overlaps extent 0 in the destination/,
    },
    {
      name: 'overlap on the disk',
      extents: [
        { destOffset: 0, length: 4 * B, diskOffset: 10 * B },
        { destOffset: 4 * B, length: B, diskOffset: 2 * B },
        { destOffset: 5 * B, length: 2 * B, diskOffset: 13 * B },
      ],
      rule: 'overlap-disk',
      index: 2,
      says: /extent 2 .*overlaps extent 0 .*on the disk/,
    },
    {
      name: 'extent past the end of the disk',
      extents: [{ destOffset: 0, length: 4 * B, diskOffset: DISK - 2 * B }],
      rule: 'out-of-disk',
      index: 0,
      says: /extent 0 .*past the end of the disk/,
    },
    {
      name: 'unaligned disk offset',
      extents: [{ destOffset: 0, length: B, diskOffset: 512 }],
      rule: 'unaligned',
      index: 0,
      says: /extent 0 .*not aligned to the block size 4096/,
    },
    {
      name: 'unaligned length in the middle',
      extents: [
        { destOffset: 0, length: B + 512, diskOffset: 0 },
        { destOffset: B + 512, length: B, diskOffset: 8 * B },
      ],
      rule: 'unaligned',
      index: 0,
      says: /extent 0 .*not aligned/,
    },
    {
      name: 'negative length',
      extents: [{ destOffset: 0, length: -B, diskOffset: 0 }],
      rule: 'not-a-number',
      index: 0,
      says: /extent 0: length must be a positive integer/,
    },
    {
      name: 'zero length',
      extents: [{ destOffset: 0, length: 0, diskOffset: 0 }],
      rule: 'not-a-number',
      index: 0,
      says: /extent 0: length/,
    },
  ];
  for (const c of cases) {
    it(`refuses ${c.name}, naming the extent and the rule`, () => {
      const err = refusal(c.extents);
      expect(err.rule).toBe(c.rule);
      expect(err.extentIndex).toBe(c.index);
      expect(err.message).toMatch(c.says);
      expect(err.fix.length).toBeGreaterThan(10);
    });
  }

  it('refuses a non-number field, non-JSON text, an empty map and a bad block size', () => {
    expect(refusal([{ destOffset: '0', length: B, diskOffset: 0 }]).rule).toBe('not-a-number');
    expect(refusal('{"extents": [').rule).toBe('not-json');
    expect(refusal([]).rule).toBe('no-extents');
    expect(refusal('{"extent": []}').rule).toBe('no-extents');
    for (const bad of [256, 3000, 131072]) expect(refusal([{ destOffset: 0, length: B, diskOffset: 0 }], DISK, bad).rule).toBe('block-size');
  });

  it('lets only the last extent end unaligned, and only at the end of the disk', () => {
    const disk = 10 * B + 100;
    const map = RemapMap.parse(
      { extents: [{ destOffset: 0, length: 2 * B, diskOffset: 0 }, { destOffset: 2 * B, length: 2 * B + 100, diskOffset: 8 * B }] },
      disk,
      B,
    );
    expect(map.destinationSize).toBe(4 * B + 100);
    expect(map.destinationBlocks).toBe(5);
    expect(map.homeOf(4)).toBe(10);
    expect(map.destBlockLength(4)).toBe(100);
    expect(map.diskBlockLength(10)).toBe(100);
    // The same short extent first is refused: the next one would start unaligned.
    const err = refusal(
      [
        { destOffset: 0, length: 2 * B + 100, diskOffset: 8 * B },
        { destOffset: 2 * B + 100, length: 2 * B, diskOffset: 0 },
      ],
      disk,
    );
    expect(err.rule).toBe('unaligned');
    expect(err.extentIndex).toBe(0);
    expect(err.message).toMatch(/only the last extent may end unaligned/);
  });
});

describe('accepted maps and lookups', () => {
  it('identity: home(d) = d, one run', () => {
    const map = RemapMap.identity(DISK, B);
    expect(map.destinationSize).toBe(DISK);
    expect(map.homeOf(17)).toBe(17);
    expect(map.destOf(17)).toBe(17);
    expect(map.homeRuns(0, 64)).toEqual([{ dest: 0, disk: 0, count: 64 }]);
  });

  it('shift: the destination starts 8 MiB into the disk', () => {
    const disk = 64 * 1024 * 1024;
    const map = RemapMap.parse(JSON.stringify({ extents: [{ destOffset: 0, length: disk - 8 * 1024 * 1024, diskOffset: 8 * 1024 * 1024 }] }), disk, B);
    expect(map.homeOf(0)).toBe(2048);
    expect(map.destOf(2047)).toBe(-1);
    expect(map.isHome(2047)).toBe(false);
    expect(map.destOf(2048)).toBe(0);
    expect(map.splitBytes(100, 5000)).toEqual([{ destOffset: 100, diskOffset: 8 * 1024 * 1024 + 100, length: 5000 }]);
  });

  it('the 5-block permutation of DESIGN §3 (1→4, 2→3, 3→1, 4→5, 5→2)', () => {
    // Destination block i (1-based) holds the content of disk block i; its home is where that content goes.
    const homes = [4, 3, 1, 5, 2];
    const extents = homes.map((home, i) => ({ destOffset: i * B, length: B, diskOffset: (home - 1) * B }));
    const map = RemapMap.parse({ extents }, 5 * B, B);
    expect([0, 1, 2, 3, 4].map((d) => map.homeOf(d) + 1)).toEqual(homes);
    expect(map.destOf(0)).toBe(2);
    expect(map.homeRuns(0, 5)).toEqual(homes.map((home, d) => ({ dest: d, disk: home - 1, count: 1 })));
    expect(map.ownerRuns(0, 5).map((r) => [r.disk, r.dest])).toEqual([
      [0, 2],
      [1, 4],
      [2, 1],
      [3, 0],
      [4, 3],
    ]);
  });

  it('random valid maps: home, inverse, runs and byte splits agree with a per-block table', () => {
    const arb = fc
      .tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 511 }))
      .chain(([blocks, tail]) =>
        fc.tuple(
          fc.constant(blocks),
          fc.constant(tail),
          fc.shuffledSubarray([...Array(blocks).keys()], { minLength: 1 }),
          fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 40, maxLength: 40 }),
        ),
      );
    fc.assert(
      fc.property(arb, ([blocks, tail, diskBlocks, cuts]) => {
        const bs = 512;
        const diskSize = blocks * bs + tail;
        // Group the chosen disk blocks into extents of consecutive blocks where the random cuts allow.
        const extents: MapExtent[] = [];
        let dest = 0;
        diskBlocks.forEach((p, i) => {
          const last = extents[extents.length - 1];
          if (last !== undefined && cuts[i] !== 0 && last.diskOffset + last.length === p * bs) last.length += bs;
          else extents.push({ destOffset: dest, length: bs, diskOffset: p * bs });
          dest += bs;
        });
        const map = RemapMap.fromExtents(extents, diskSize, bs);
        const table = diskBlocks;
        for (let d = 0; d < table.length; d++) {
          expect(map.homeOf(d)).toBe(table[d]);
          expect(map.destOf(table[d])).toBe(d);
        }
        for (let p = 0; p < Math.ceil(diskSize / bs); p++) expect(map.isHome(p)).toBe(table.includes(p));
        const runs = map.homeRuns(0, table.length);
        expect(runs.flatMap((r) => Array.from({ length: r.count }, (_, k) => [r.dest + k, r.disk + k]))).toEqual(table.map((p, d) => [d, p]));
        const pieces = map.splitBytes(100, table.length * bs - 150);
        expect(pieces.reduce((n, piece) => n + piece.length, 0)).toBe(table.length * bs - 150);
        for (const piece of pieces) expect(piece.diskOffset - (piece.destOffset % bs)).toBe(table[Math.floor(piece.destOffset / bs)] * bs);
        let splits = 0;
        map.forEachHomeSplit(0, Math.ceil(diskSize / bs), (start, count, isHome) => {
          for (let k = 0; k < count; k++) expect(table.includes(start + k)).toBe(isHome);
          splits += count;
        });
        expect(splits).toBe(Math.ceil(diskSize / bs));
      }),
      { numRuns: 200 },
    );
  });
});

describe('adjacent extents', () => {
  it('are merged, so a map listed block by block costs what its shape costs', () => {
    const blocks = MAX_MAP_EXTENTS + 5;
    const disk = (blocks + 3) * B;
    // A shift by three blocks, listed one block at a time, plus a tail of the same run.
    const listed = Array.from({ length: blocks }, (_, i) => ({ destOffset: i * B, length: B, diskOffset: (i + 3) * B }));
    const map = RemapMap.fromExtents(listed, disk, B);
    expect(map.listedExtents).toBe(blocks);
    expect(map.extents).toEqual([{ destOffset: 0, length: blocks * B, diskOffset: 3 * B }]);
    expect(map.homeOf(blocks - 1)).toBe(blocks + 2);
    expect(map.destOf(2)).toBe(-1);
  });

  it('merge only where both the destination and the disk continue, and keep the lookups of the listed map', () => {
    const listed: MapExtent[] = [
      { destOffset: 0, length: B, diskOffset: 10 * B },
      { destOffset: B, length: 2 * B, diskOffset: 11 * B }, // continues the first on the disk: merged
      { destOffset: 3 * B, length: B, diskOffset: 0 }, // jumps back: its own extent
      { destOffset: 4 * B, length: B, diskOffset: 2 * B }, // leaves a hole on the disk: its own extent
      { destOffset: 5 * B, length: B, diskOffset: 3 * B }, // continues the previous: merged
    ];
    const map = RemapMap.fromExtents(listed, DISK, B);
    expect(map.extents).toEqual([
      { destOffset: 0, length: 3 * B, diskOffset: 10 * B },
      { destOffset: 3 * B, length: B, diskOffset: 0 },
      { destOffset: 4 * B, length: 2 * B, diskOffset: 2 * B },
    ]);
    expect(map.listedExtents).toBe(5);
    expect([0, 1, 2, 3, 4, 5].map((d) => map.homeOf(d))).toEqual([10, 11, 12, 0, 2, 3]);
  });

  it(`more than ${MAX_MAP_EXTENTS} of them, once merged, are refused with the limit and the fix`, () => {
    const count = MAX_MAP_EXTENTS + 1;
    // Reversed block by block: no two extents continue each other on the disk.
    const extents = Array.from({ length: count }, (_, i) => ({ destOffset: i * B, length: B, diskOffset: (count - 1 - i) * B }));
    const err = refusal(extents, count * B);
    expect(err.rule).toBe('too-many-extents');
    expect(err.message).toMatch(new RegExp(`map has ${count} extents once adjacent ones are merged \\(${count} listed\\); at most ${MAX_MAP_EXTENTS}`));
    expect(err.fix).toMatch(/whole partitions/);
    expect(RemapMap.fromExtents(extents.slice(1).map((e) => ({ ...e, destOffset: e.destOffset - B })), count * B, B).extents.length).toBe(MAX_MAP_EXTENTS);
  });
});
