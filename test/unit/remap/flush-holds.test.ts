import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import type { RemapEngine } from '../../../src/remap/remap-engine.js';
import { GatedJournal, HeldWritesDevice, turns } from './helpers/held-io.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const B = 4096;
const W = { fua: false };

/**
 * With a landing's write held: holds the journal, asks for a FLUSH (its `hold`
 * records pin the RAM buffers they write from), then lets the landing finish.
 * Returns the FLUSH, which completes once the journal is released.
 */
async function flushWhileLanding(engine: RemapEngine, journal: GatedJournal, device: HeldWritesDevice): Promise<{ flushed: Promise<void> }> {
  journal.close();
  const flushed = engine.destination.flush();
  await turns();
  device.letGo();
  // Wrapped: an async function's result would wait for the FLUSH, which waits for the journal.
  return { flushed };
}

function block(fill: number): Buffer {
  return Buffer.alloc(B, fill);
}

/** A sealed engine over an 8-block disk of patterned data, no revisit cache, and a journal whose commits can be held. */
async function sealedEngine<D extends MemoryDevice>(cacheBytes: number, device: D): Promise<{ device: D; journal: GatedJournal; engine: RemapEngine }> {
  patternBytes(device.size, 7).copy(device.bytes);
  const journal = new GatedJournal();
  const engine = createRemapper({ device, cacheBytes, revisitCacheBytes: 0, journal });
  await engine.seal();
  return { device, journal, engine };
}

describe('a FLUSH logs held blocks as they were when it was asked', () => {
  it('whatever happens to their RAM before the commit writes them: overwritten, partly written, trimmed and reused', async () => {
    // Room for the second buffers the changes below take while the commit uses the first ones.
    const { journal, engine } = await sealedEngine(8 * B, new MemoryDevice(8 * B, B));
    // Homes unread, so all three stay in RAM.
    await engine.destination.write(0, block(0xa0), W);
    await engine.destination.write(B, block(0xa1), W);
    await engine.destination.write(2 * B, block(0xa2), W);

    journal.close();
    const flushed = engine.destination.flush();
    // While the commit is held: block 0 overwritten whole, block 1 in part, block 2 trimmed
    // (its RAM dropped) and a new block admitted into the memory that frees.
    await engine.destination.write(0, block(0xb0), W);
    await engine.destination.write(B + 100, Buffer.alloc(10, 0xb1), W);
    await engine.destination.trim(2 * B, B, W);
    await engine.destination.write(3 * B, block(0xb3), W);
    journal.release();
    await flushed;

    const logged = new Map(journal.holds.map((h) => [h.dest, h.data]));
    expect(logged.get(0)?.equals(block(0xa0))).toBe(true);
    expect(logged.get(1)?.equals(block(0xa1))).toBe(true);
    expect(logged.get(2)?.equals(block(0xa2))).toBe(true);
    // And the destination reads the newer data.
    const read = Buffer.alloc(4 * B);
    await engine.destination.readInto(read, 0);
    expect(read.subarray(0, B).equals(block(0xb0))).toBe(true);
    expect(read.subarray(B + 100, B + 110).equals(Buffer.alloc(10, 0xb1))).toBe(true);
    expect(read.subarray(2 * B, 3 * B).equals(Buffer.alloc(B))).toBe(true);
    expect(read.subarray(3 * B, 4 * B).equals(block(0xb3))).toBe(true);
  });

});

describe('RAM a FLUSH\'s commit writes from counts against the cache until the commit is done (G4)', () => {
  it('never takes more RAM than the cache: a change that needs a second buffer waits for the commit', async () => {
    const cache = 3 * B;
    const { journal, engine } = await sealedEngine(cache, new MemoryDevice(8 * B, B));
    // Homes unread and nothing released: no block can land or spill, RAM is all there is.
    for (let d = 0; d < 3; d++) await engine.destination.write(d * B, block(0xa0 + d), W);
    const inUse = (): number => engine.status().cacheBytes;

    journal.close();
    const flushed = engine.destination.flush();
    const done = new Set<string>();
    const writes = [
      engine.destination.write(0, block(0xb0), W).then(() => done.add('whole')),
      engine.destination.write(B + 100, Buffer.alloc(10, 0xb1), W).then(() => done.add('partial')),
    ];
    await turns();
    // The commit writes from all three buffers and the cache has no room for second ones.
    expect([...done]).toEqual([]);
    expect(inUse()).toBeLessThanOrEqual(cache);
    // A trim drops block 2 from RAM, but its buffer is still the commit's: no room for block 3 yet.
    await engine.destination.trim(2 * B, B, W);
    writes.push(engine.destination.writeZeroes(3 * B + 1, 10, { fua: false, mayTrim: true, fast: false }).then(() => done.add('fresh')));
    await turns();
    expect([...done]).toEqual([]);
    expect(inUse()).toBeLessThanOrEqual(cache);

    journal.release();
    await flushed;
    await Promise.all(writes);
    expect([...done].sort()).toEqual(['fresh', 'partial', 'whole']);
    expect(inUse()).toBeLessThanOrEqual(cache);
    expect(engine.status().enospc).toBe(0);
    expect(journal.holds.map((h) => h.data[0])).toEqual([0xa0, 0xa1, 0xa2]);
    const read = Buffer.alloc(4 * B);
    await engine.destination.readInto(read, 0);
    expect(read.subarray(0, B).equals(block(0xb0))).toBe(true);
    expect(read.subarray(B + 100, B + 110).equals(Buffer.alloc(10, 0xb1))).toBe(true);
    expect(read.subarray(2 * B, 3 * B).equals(Buffer.alloc(B))).toBe(true);
    expect(read.subarray(3 * B + 1, 3 * B + 11).equals(Buffer.alloc(10))).toBe(true);
  });

  it('concurrent partial writes of pinned blocks share the room for second buffers: no more than fits is taken', async () => {
    // Two blocks held and room for one more buffer: only one of two changes may take its second buffer now.
    const cache = 3 * B;
    const { device, journal, engine } = await sealedEngine(cache, new MemoryDevice(8 * B, B));
    await engine.destination.write(0, Buffer.concat([block(0xa0), block(0xa1)]), W);
    let peak = 0;
    device.onIo = () => (peak = Math.max(peak, engine.status().cacheBytes));

    journal.close();
    const flushed = engine.destination.flush();
    const done: string[] = [];
    // Issued in the same turn, as a client's pipelined requests are: a write and a write-zeroes, each part of one block.
    const changes = [
      engine.destination.write(100, Buffer.alloc(10, 0xb0), W).then(() => done.push('write')),
      engine.destination.writeZeroes(B + 100, 10, { fua: false, mayTrim: true, fast: false }).then(() => done.push('zeroes')),
    ];
    await turns();
    peak = Math.max(peak, engine.status().cacheBytes);
    expect(peak).toBeLessThanOrEqual(cache);
    expect(done).toHaveLength(1);

    journal.release();
    await flushed;
    await Promise.all(changes);
    expect(Math.max(peak, engine.status().cacheBytes)).toBeLessThanOrEqual(cache);
    const read = Buffer.alloc(2 * B);
    await engine.destination.readInto(read, 0);
    expect(read.subarray(100, 110).equals(Buffer.alloc(10, 0xb0))).toBe(true);
    expect(read.subarray(B + 100, B + 110).equals(Buffer.alloc(10))).toBe(true);
    expect(read[0]).toBe(0xa0);
    expect(read[B]).toBe(0xa1);
    expect(journal.holds.map((h) => h.data[0])).toEqual([0xa0, 0xa1]);
  });

  it('a victim pinned by a FLUSH while it lands frees no RAM: the block admitted in its place waits for the commit', async () => {
    const cache = 2 * B;
    const { device, journal, engine } = await sealedEngine(cache, new HeldWritesDevice(8 * B, B));
    const inUse = (): number => engine.status().cacheBytes;
    // Blocks 0 and 1 held in RAM, then their homes read (not confirmed: a checkpoint would log them).
    await engine.destination.write(0, Buffer.concat([block(0xa0), block(0xa1)]), W);
    await engine.source.readInto(Buffer.alloc(2 * B), 0);

    // Block 2's home is unread: with RAM full, block 0 lands to make room for it, and that write is held.
    device.hold();
    let written = false;
    const write = engine.destination.write(2 * B, block(0xa2), W).then(() => (written = true));
    for (let i = 0; i < 100 && device.pending === 0; i++) await turns(1);
    expect(device.pending).toBeGreaterThan(0);

    // A FLUSH now logs 0 and 1 from their RAM buffers, and its commit is held: landing 0 frees nothing yet.
    const { flushed } = await flushWhileLanding(engine, journal, device);
    await turns();
    expect(written).toBe(false);
    expect(inUse()).toBeLessThanOrEqual(cache);

    journal.release();
    await flushed;
    await write;
    expect(inUse()).toBeLessThanOrEqual(cache);
    expect(engine.status().enospc).toBe(0);
    expect(journal.holds.map((h) => [h.dest, h.data[0]])).toEqual([
      [0, 0xa0],
      [1, 0xa1],
    ]);
    expect(engine.locationOf(0)).toEqual({ kind: 'home', block: 0 });
    expect(device.bytes.subarray(0, B).equals(block(0xa0))).toBe(true);
    const read = Buffer.alloc(3 * B);
    await engine.destination.readInto(read, 0);
    expect(read.equals(Buffer.concat([block(0xa0), block(0xa1), block(0xa2)]))).toBe(true);
  });

  it('finish waits for RAM a FLUSH\'s commit still writes from before it breaks a cycle of slots, rather than give up (G6)', async () => {
    // d0→1, d1→2, d2→0: a cycle once each is spilled into the next one's home; d3→3 fills the one-block RAM.
    const homes = [1, 2, 0, 3];
    const map = RemapMap.fromExtents(
      homes.map((home, d) => ({ destOffset: d * B, length: B, diskOffset: home * B })),
      homes.length * B,
      B,
    );
    const device = new HeldWritesDevice(homes.length * B, B);
    patternBytes(homes.length * B, 7).copy(device.bytes);
    const journal = new GatedJournal();
    const cache = B;
    const engine = createRemapper({ device, map, cacheBytes: cache, revisitCacheBytes: 0, journal });
    const inUse = (): number => engine.status().cacheBytes;
    const readAndConfirm = async (p: number): Promise<void> => {
      await engine.source.readInto(Buffer.alloc(B), p * B);
      await engine.checkpoint();
    };
    await engine.seal();
    await engine.destination.write(3 * B, block(0xa3), W);
    await readAndConfirm(2);
    await engine.destination.write(0, block(0xa0), W); // RAM is full: spills into block 2, d1's home
    await readAndConfirm(0);
    await engine.destination.write(B, block(0xa1), W); // its home is a slot: spills into block 0, d2's home
    await readAndConfirm(1);
    await engine.destination.write(2 * B, block(0xa2), W); // spills into block 1, d0's home: the cycle is closed
    await readAndConfirm(3);
    expect([0, 1, 2, 3].map((d) => engine.locationOf(d).kind)).toEqual(['slot', 'slot', 'slot', 'ram']);
    // d3 changed in RAM since the checkpoint logged it: the next FLUSH logs it again, from its RAM buffer.
    await engine.destination.write(3 * B + 10, Buffer.alloc(10, 0xb3), W);

    // A whole write of d3 lands at its home (read and confirmed); that disk write is held, and with it d3's lock.
    device.hold((offset) => offset === 3 * B);
    const landed = engine.destination.write(3 * B, block(0xc3), W);
    for (let i = 0; i < 100 && device.pending === 0; i++) await turns(1);
    expect(device.pending).toBe(1);
    // Finish finds only the locked d3 movable and waits for its lock.
    let finished = false;
    const finish = engine.finish().then(() => (finished = true));
    await turns();
    // A FLUSH logs d3 from its RAM buffer; its commit is held, so that buffer stays RAM when the landing drops d3.
    const { flushed } = await flushWhileLanding(engine, journal, device);
    await landed;
    await turns();
    // Only the cycle is left and the one block of RAM is the commit's: finish waits rather than give up.
    expect(finished).toBe(false);
    expect(inUse()).toBe(cache);
    journal.release();
    await flushed;
    await finish;
    expect(inUse()).toBeLessThanOrEqual(cache);
    expect(device.bytes.equals(Buffer.concat([block(0xa2), block(0xa0), block(0xa1), block(0xc3)]))).toBe(true);
  });
});
