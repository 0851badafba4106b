import { describe, expect, it } from 'vitest';
import { createRemapper, type RemapperOptions } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { MAX_STATUS_RUNS } from '../../../src/remap/run-descriptors.js';
import { WRITTEN_CONTEXT, WRITTEN_FLAG } from '../../../src/remap/written-runs.js';
import { readExport, type BlockExport } from '../../../src/server/block-export.js';
import type { Logger } from '../../../src/log/logger.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';
import { writtenBlocks } from './helpers/written-blocks.js';

const W = { fua: false };
const silent: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => silent };

function setup(blocks: number, B: number, options: Partial<RemapperOptions> = {}) {
  const device = new MemoryDevice(blocks * B, B);
  patternBytes(blocks * B, 42).copy(device.bytes);
  const engine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 2 * B, log: silent, ...options });
  const context = engine.destination.metaContexts?.find((c) => c.name === WRITTEN_CONTEXT);
  if (context === undefined) throw new Error(`destination offers no ${WRITTEN_CONTEXT}`);
  return { engine, context, original: Buffer.from(device.bytes) };
}

/** The written blocks among [0, blocks), as a sorted list. */
async function writtenList(exp: BlockExport, blocks: number, B: number): Promise<number[]> {
  const map = await writtenBlocks(exp, 0, blocks * B, B);
  return [...map].filter(([, w]) => w).map(([d]) => d);
}

describe('x-nbd-remapper:written, the destination context of written blocks', () => {
  it('reports blocks held in RAM, spilled, held as zeroes and landed as written, and all others — a slot among them — as not', async () => {
    const B = 4096;
    const { engine, context, original } = setup(16, B);
    await engine.seal();
    expect(await context.status(0, 16 * B)).toEqual([{ length: 16 * B, flags: 0 }]);

    await readExport(engine.source, 8 * B, 8 * B); // blocks 8–15 released…
    await engine.checkpoint(); // …and confirmed: free to land on or to spill into
    await engine.destination.write(0, Buffer.alloc(2 * B, 1), W); // homes 0, 1 unread: held in the 2-block RAM cache
    await engine.destination.write(2 * B, Buffer.alloc(B, 2), W); // RAM full, home 2 unread: spills into one of 8–15
    await engine.destination.writeZeroes(5 * B, B, { fua: false, mayTrim: true, fast: false }); // held as a zero extent
    await engine.destination.write(12 * B, Buffer.alloc(B, 3), W); // home 12 is released: lands there at once
    const status = engine.status();
    expect(status.spilled).toBe(1);
    expect(status.heldAsZero).toBe(1);

    expect(await writtenList(engine.destination, 16, B)).toEqual([0, 1, 2, 5, 12]);
    expect(await context.status(0, 16 * B)).toEqual([
      { length: 3 * B, flags: WRITTEN_FLAG },
      { length: 2 * B, flags: 0 },
      { length: B, flags: WRITTEN_FLAG },
      { length: 6 * B, flags: 0 },
      { length: B, flags: WRITTEN_FLAG },
      { length: 3 * B, flags: 0 },
    ]);
    // A request from the middle of a block is answered from there.
    expect(await context.status(B / 2, B)).toEqual([{ length: B, flags: WRITTEN_FLAG }]);

    // The slot's own destination block was never written: it reads its home's current content, which is the
    // spilled block's data now (G3). The flag is what tells a client this content is not its own.
    const slotOwners: number[] = [];
    for (let d = 8; d < 16; d++) {
      const got = await readExport(engine.destination, d * B, B);
      if (got.equals(Buffer.alloc(B, 2))) slotOwners.push(d);
      else if (d !== 12) expect(got.equals(original.subarray(d * B, (d + 1) * B)), `destination block ${d}`).toBe(true);
    }
    expect(slotOwners).toHaveLength(1);
    expect((await writtenBlocks(engine.destination, slotOwners[0] * B, B, B)).get(slotOwners[0])).toBe(false);

    // After finish destination is the disk itself: every block is reported written.
    await engine.finish();
    expect(await context.status(0, 16 * B)).toEqual([{ length: 16 * B, flags: WRITTEN_FLAG }]);
  });

  it(`answers at most ${MAX_STATUS_RUNS} written runs, ending at the last one's end; asking again from there covers the rest`, async () => {
    const B = 512;
    const blocks = 3 * MAX_STATUS_RUNS;
    const map = RemapMap.identity(blocks * B, B);
    const { engine, context } = setup(blocks, B, { map });
    await engine.seal();
    await readExport(engine.source, 0, blocks * B);
    await engine.checkpoint();
    // Every other block written: each lands at its released home at once, one run apiece.
    for (let d = 0; d < blocks; d += 2) await engine.destination.write(d * B, Buffer.alloc(B, 7), W);

    const first = await context.status(0, blocks * B);
    const covered = first.reduce((sum, d) => sum + d.length, 0);
    expect(first.filter((d) => d.flags === WRITTEN_FLAG)).toHaveLength(MAX_STATUS_RUNS);
    expect(covered).toBe((2 * MAX_STATUS_RUNS - 1) * B);
    expect(first[first.length - 1].flags).toBe(WRITTEN_FLAG);

    const all = await writtenBlocks(engine.destination, 0, blocks * B, B);
    expect(all.size).toBe(blocks);
    for (const [d, written] of all) expect(written, `destination block ${d}`).toBe(d % 2 === 0);
  });
});
