import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RemapMap } from '../../../src/remap/map.js';
import { defaultStatePath, finishOffline, openMigration, resolveStatePath, StateCorruptError, StateError, StateMismatchError, StateUnusableError } from '../../../src/state/index.js';
import { Disk } from '../../../src/store/disk.js';
import { randomImage, scratchDir } from '../../helpers/scratch.js';
import { silent } from '../remap/durability/helpers/crash-workload.js';
import { readExport } from '../../../src/server/block-export.js';

/**
 * openMigration / finishOffline on real files in a temporary directory: a
 * "kill -9" is a copy of the image and the state file as the kernel has
 * them (every write the process made is in the page cache), opened again.
 */
const B = 4096;
const BLOCKS = 64;
const SIZE = BLOCKS * B;

let dir: ReturnType<typeof scratchDir>;
const disks: Disk[] = [];
async function open(path: string): Promise<Disk> {
  const d = await Disk.open(path, { readOnly: false });
  disks.push(d);
  return d;
}
beforeEach(() => {
  dir = scratchDir('nbd-remapper-state-');
});
afterEach(async () => {
  await Promise.all(disks.splice(0).map((d) => d.close()));
  dir.cleanup();
});

/** Destination block d lives at disk block (d * 7 + 3) mod 64: a permutation, so data moves everywhere. */
function permutation(): RemapMap {
  const extents = Array.from({ length: BLOCKS }, (_, d) => ({ destOffset: d * B, length: B, diskOffset: ((d * 7 + 3) % BLOCKS) * B }));
  return RemapMap.fromExtents(extents, SIZE, B);
}

function block(seed: number): Buffer {
  return Buffer.alloc(B, seed & 0xff);
}

/** Copies image + state as a crash leaves them (the process dies; the kernel has every write). */
function crashCopy(image: string, state: string, to: string): { image: string; state: string } {
  copyFileSync(image, `${to}.img`);
  copyFileSync(state, defaultStatePath(`${to}.img`));
  return { image: `${to}.img`, state: defaultStatePath(`${to}.img`) };
}

describe('openMigration and finishOffline with real files', () => {
  it('resumes after a kill: flushed writes, originals and the phase are back; finish offline completes the layout', async () => {
    const imagePath = dir.file('disk.img');
    const original = randomImage(imagePath, SIZE);
    const statePath = defaultStatePath(imagePath);
    const disk = await open(imagePath);
    const map = permutation();
    const m = await openMigration({ disk, diskPath: imagePath, statePath, map, cacheBytes: 4 * B, revisitCacheBytes: 0, log: silent });
    expect(m.resumed).toBe(false);
    const e = m.engine;
    await e.seal();
    // Read the first half of the source (releases it), write every destination block, flush.
    const expected: Array<Buffer | undefined> = [];
    await readExport(e.source, 0, SIZE / 2);
    let refused = 0;
    for (let d = 0; d < BLOCKS; d++) {
      expected.push(block(d + 1));
      // ENOSPC once RAM and the released half are full: such a block reads whatever its home holds.
      await e.destination.write(d * B, block(d + 1), { fua: false }).catch(() => {
        expected[d] = undefined;
        refused++;
      });
    }
    expect(refused).toBeLessThan(BLOCKS / 2);
    await e.destination.flush();
    const before = e.status();
    expect(before.durability.heldInRamVolatile).toBe(0);
    expect(before.durability.journal?.path).toBe(statePath);
    expect(before.durability.journal?.records).toBeGreaterThan(0);
    // An unflushed write after the flush: may or may not survive.
    await e.destination.write(0, block(200), { fua: false }).catch(() => undefined);

    const crashed = crashCopy(imagePath, statePath, dir.file('crash'));
    const disk2 = await open(crashed.image);
    const m2 = await openMigration({ disk: disk2, diskPath: crashed.image, statePath: crashed.state, cacheBytes: 4 * B, revisitCacheBytes: 0, log: silent });
    expect(m2.resumed).toBe(true);
    expect(m2.engine.phase).toBe('sealed');
    expect(m2.engine.map.extents).toEqual(map.extents);
    for (let d = 1; d < BLOCKS; d++) {
      const want = expected[d];
      if (want !== undefined) expect((await readExport(m2.engine.destination, d * B, B)).equals(want), `destination block ${d}`).toBe(true);
    }
    for (let p = 0; p < BLOCKS; p++) {
      const got = await readExport(m2.engine.source, p * B, B).catch((err: Error) => err);
      if (got instanceof Error) {
        expect(p, `only released blocks may be lost (block ${p})`).toBeLessThan(BLOCKS / 2);
        continue;
      }
      expect(got.equals(original.subarray(p * B, (p + 1) * B)), `source block ${p}`).toBe(true);
    }
    const served = await readExport(m2.engine.destination, 0, SIZE);
    await m2.close();
    await disk2.close();

    const disk3 = await open(crashed.image);
    const progress: Array<{ done: number; total: number }> = [];
    await finishOffline({ disk: disk3, statePath: crashed.state, log: silent, onProgress: (p) => progress.push(p) });
    await disk3.close();
    const final = readFileSync(crashed.image);
    for (let d = 0; d < BLOCKS; d++) {
      const home = map.homeOf(d);
      expect(final.subarray(home * B, home * B + B).equals(served.subarray(d * B, d * B + B)), `disk block ${home}`).toBe(true);
    }
    expect(progress.length).toBeGreaterThan(0);
    // Finishing again is a no-op.
    const disk4 = await open(crashed.image);
    await finishOffline({ disk: disk4, statePath: crashed.state, log: silent });
    await m.close();
  });

  it('a clean close keeps RAM-held data: it goes into the state', async () => {
    const imagePath = dir.file('clean.img');
    randomImage(imagePath, SIZE);
    const statePath = defaultStatePath(imagePath);
    const disk = await open(imagePath);
    const m = await openMigration({ disk, diskPath: imagePath, statePath, map: permutation(), cacheBytes: 8 * B, log: silent });
    await m.engine.seal();
    await m.engine.destination.write(5 * B, block(77), { fua: false });
    expect(m.engine.status().durability.heldInRamVolatile).toBe(1);
    await m.close();
    await disk.close();
    const again = await open(imagePath);
    const m2 = await openMigration({ disk: again, diskPath: imagePath, statePath, cacheBytes: 8 * B, log: silent });
    expect((await readExport(m2.engine.destination, 5 * B, B)).equals(block(77))).toBe(true);
    expect(m2.engine.status().durability.heldInRamDurable).toBe(1);
    await m2.close();
  });

  it('refuses a state that belongs to another disk, block size or map, saying what differs', async () => {
    const imagePath = dir.file('a.img');
    randomImage(imagePath, SIZE);
    const statePath = defaultStatePath(imagePath);
    const disk = await open(imagePath);
    const m = await openMigration({ disk, diskPath: imagePath, statePath, map: permutation(), log: silent });
    await m.engine.seal();
    await m.close();
    await disk.close();

    const bigger = dir.file('b.img');
    randomImage(bigger, SIZE * 2);
    const diskB = await open(bigger);
    const size = await openMigration({ disk: diskB, diskPath: bigger, statePath, log: silent }).catch((e: unknown) => e);
    expect(size).toBeInstanceOf(StateMismatchError);
    expect((size as StateMismatchError).message).toContain(`disk of ${SIZE} bytes`);
    expect((size as StateMismatchError).message).toContain(`has ${SIZE * 2} bytes`);

    const sameSize = dir.file('c.img');
    randomImage(sameSize, SIZE);
    const diskC = await open(sameSize);
    const content = await openMigration({ disk: diskC, diskPath: sameSize, statePath, log: silent }).catch((e: unknown) => e);
    expect(content).toBeInstanceOf(StateMismatchError);
    expect((content as StateMismatchError).message).toMatch(/no longer holds the content it had when the source was sealed/);

    const diskA = await open(imagePath);
    const otherMap = await openMigration({ disk: diskA, diskPath: imagePath, statePath, map: RemapMap.identity(SIZE, B), log: silent }).catch((e: unknown) => e);
    expect(otherMap).toBeInstanceOf(StateMismatchError);
    expect((otherMap as StateMismatchError).message).toMatch(/map given differs from the state's map at extent 0/);
    expect((otherMap as StateMismatchError).fix).toMatch(/omit --map/);

    const otherB = await openMigration({ disk: diskA, diskPath: imagePath, statePath, blockSize: 512, log: silent }).catch((e: unknown) => e);
    expect(otherB).toBeInstanceOf(StateMismatchError);
    expect((otherB as StateMismatchError).message).toContain('block size is 4096');

    // The state's own map, without --map: accepted.
    const ok = await openMigration({ disk: diskA, diskPath: imagePath, statePath, log: silent });
    expect(ok.resumed).toBe(true);
    await ok.close();
  });

  it('refuses a damaged state file and a cache too small for the data it holds', async () => {
    const imagePath = dir.file('d.img');
    randomImage(imagePath, SIZE);
    const statePath = defaultStatePath(imagePath);
    const disk = await open(imagePath);
    const m = await openMigration({ disk, diskPath: imagePath, statePath, map: permutation(), cacheBytes: 4 * B, log: silent });
    await m.engine.seal();
    for (let d = 0; d < 3; d++) await m.engine.destination.write(d * B, block(d + 9), { fua: false });
    await m.close();
    const small = await openMigration({ disk, diskPath: imagePath, statePath, cacheBytes: 2 * B, log: silent }).catch((e: unknown) => e);
    expect(small).toBeInstanceOf(StateUnusableError);
    expect((small as StateUnusableError).fix).toMatch(/--cache 12288/);

    const bytes = readFileSync(statePath);
    bytes[30] ^= 0xff;
    writeFileSync(statePath, bytes);
    const damaged = await openMigration({ disk, diskPath: imagePath, statePath, log: silent }).catch((e: unknown) => e);
    expect(damaged).toBeInstanceOf(StateCorruptError);
    expect((damaged as StateCorruptError).message).toContain(statePath);
  });

  it('finishOffline without a state, or before sealing, says what to do', async () => {
    const imagePath = dir.file('e.img');
    randomImage(imagePath, SIZE);
    const disk = await open(imagePath);
    const none = await finishOffline({ disk, statePath: dir.file('none.remap-state'), log: silent }).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(StateError);
    expect((none as StateError).message).toMatch(/no migration to finish/);
    const statePath = defaultStatePath(imagePath);
    const m = await openMigration({ disk, diskPath: imagePath, statePath, log: silent });
    await m.close();
    const unsealed = await finishOffline({ disk, statePath, log: silent }).catch((e: unknown) => e);
    expect((unsealed as StateError).message).toMatch(/never sealed/);
    expect(existsSync(`${statePath}.tmp`)).toBe(false);
  });

  it('state paths: next to an image file; required for a block device', () => {
    expect(defaultStatePath('/images/disk.img')).toBe('/images/disk.img.remap-state');
    expect(resolveStatePath({ diskPath: '/images/disk.img', isBlockDevice: false })).toBe('/images/disk.img.remap-state');
    expect(resolveStatePath({ diskPath: '/dev/sdb', isBlockDevice: true, statePath: '/root/s' })).toBe('/root/s');
    expect(() => resolveStatePath({ diskPath: '/dev/sdb', isBlockDevice: true })).toThrow(StateError);
  });
});
