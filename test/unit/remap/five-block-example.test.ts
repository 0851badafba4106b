import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';
import { readExport } from '../../../src/server/block-export.js';

const B = 4096;
/** DESIGN §3: the content of disk block 1 goes to block 4, 2→3, 3→1, 4→5, 5→2 (1-based). */
const TARGET = [4, 3, 1, 5, 2];

/**
 * Copies block by block in source order (read source block i, write it to the
 * destination block whose home is TARGET[i]) with a cache of two blocks, and
 * checks that every disk write overwrites only a block already read.
 */
async function copyFiveBlocks(checkpointEachStep: boolean): Promise<string[]> {
  const device = new MemoryDevice(5 * B, B);
  const originals = Array.from({ length: 5 }, (_, i) => patternBytes(B, 1000 + i));
  originals.forEach((o, i) => o.copy(device.bytes, i * B));
  const read = new Set<number>();
  const events: string[] = [];
  device.writeGate = (offset, length) => {
    const p = offset / B;
    expect(length).toBe(B);
    if (!read.has(p)) throw new Error(`disk block ${p + 1} overwritten before it was read`);
    events.push(`write ${p + 1}`);
  };
  // Destination block i holds the content of source block i+1; its home is TARGET[i].
  const map = RemapMap.fromExtents(
    TARGET.map((t, i) => ({ destOffset: i * B, length: B, diskOffset: (t - 1) * B })),
    5 * B,
    B,
  );
  const engine = createRemapper({ device, map, cacheBytes: 2 * B, revisitCacheBytes: 0 });
  await engine.seal();
  for (let i = 0; i < 5; i++) {
    const data = await readExport(engine.source, i * B, B);
    expect(data.equals(originals[i])).toBe(true);
    read.add(i);
    events.push(`read ${i + 1}`);
    await engine.destination.write(i * B, data, { fua: false });
    if (checkpointEachStep) await engine.checkpoint();
    expect(engine.status().heldInRamBytes).toBeLessThanOrEqual(2 * B);
  }
  const before = engine.status();
  expect(before.enospc).toBe(0);
  events.push('finish');
  await engine.finish();
  expect(engine.phase).toBe('finished');
  for (let i = 0; i < 5; i++) {
    const home = TARGET[i] - 1;
    expect(device.bytes.subarray(home * B, (home + 1) * B).equals(originals[i]), `disk block ${TARGET[i]} holds the content of block ${i + 1}`).toBe(true);
  }
  const all = await readExport(engine.destination, 0, 5 * B);
  expect(all.equals(Buffer.concat(originals))).toBe(true);
  return events;
}

describe('the 5-block example of DESIGN §3 with a 2-block cache', () => {
  it('copies in source order; every write overwrites only what was read; the disk is permuted after finish', async () => {
    const events = await copyFiveBlocks(false);
    console.log(`5-block example, no checkpoints: ${events.join(', ')}`);
    expect(events.filter((e) => e.startsWith('write')).length).toBe(5);
  });

  it('the same with a checkpoint after each step (confirmed homes take data at once)', async () => {
    const events = await copyFiveBlocks(true);
    console.log(`5-block example, checkpoint after each step: ${events.join(', ')}`);
    // Confirmed homes take their data before finish: some writes happen during the copy.
    expect(events.indexOf('finish')).toBeGreaterThan(events.findIndex((e) => e.startsWith('write')));
  });
});
