import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log/logger.js';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { readExport } from '../../../src/server/block-export.js';
import { HeldWritesDevice, turns } from './helpers/held-io.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const B = 4096;

/** A disk whose reads at chosen offsets fail, or wait until the test lets them go. */
class ReadTrapDevice extends MemoryDevice {
  failAt = new Set<number>();
  holdAt = new Set<number>();
  heldReads = 0;
  private open: (() => void) | undefined;
  private readonly gate = new Promise<void>((resolve) => (this.open = resolve));

  letReadsGo(): void {
    this.open?.();
  }

  override async readInto(buffer: Buffer, offset: number): Promise<void> {
    if (this.failAt.delete(offset)) throw Object.assign(new Error('Input/output error'), { code: 'EIO' });
    if (this.holdAt.delete(offset)) {
      this.heldReads++;
      await this.gate;
    }
    return super.readInto(buffer, offset);
  }
}

/** Source reads of released blocks, then a checkpoint: destination writes to them land at once, capturing the originals. */
async function releasedAndConfirmed(engine: ReturnType<typeof createRemapper>, blocks: number): Promise<void> {
  await engine.seal();
  await readExport(engine.source, 0, blocks * B);
  await engine.checkpoint();
}

describe('captured originals stay the originals (G2)', () => {
  it('a capture whose write is still in flight keeps its buffer, however many captures the revisit cache evicts meanwhile', async () => {
    const blocks = 16;
    const device = new HeldWritesDevice(blocks * B, B);
    patternBytes(blocks * B, 1).copy(device.bytes);
    const originals = Buffer.from(device.bytes);
    // A revisit cache of one block: each capture evicts the one before.
    const engine = createRemapper({ device, map: RemapMap.identity(blocks * B, B), cacheBytes: 4 * B, revisitCacheBytes: B });
    await releasedAndConfirmed(engine, 4);

    device.hold((offset) => offset === 0);
    const slow = engine.destination.write(0, Buffer.alloc(B, 0xaa), { fua: false });
    await turns();
    expect(device.pending).toBe(1);
    // Block 1's capture evicts block 0's; block 2's capture then takes a spare buffer — not block 0's, which a
    // source read may still copy from while block 0's write runs.
    await engine.destination.write(B, Buffer.alloc(B, 0xbb), { fua: false });
    await turns();
    await engine.destination.write(2 * B, Buffer.alloc(B, 0xcc), { fua: false });
    await turns();

    const revisit = readExport(engine.source, 0, B);
    await turns();
    device.letGo();
    await slow;
    expect((await revisit).equals(originals.subarray(0, B)), 'the revisit of block 0 reads its original').toBe(true);
    // Once that write is done, block 0's buffer is the cache's to reuse: later captures and revisits still come out right.
    await engine.destination.write(3 * B, Buffer.alloc(B, 0xdd), { fua: false });
    await turns();
    expect((await readExport(engine.source, 3 * B, B)).equals(originals.subarray(3 * B, 4 * B))).toBe(true);
  });

  it('a capture with a failed chunk waits for its other reads before the write, and keeps only what it read before it', async () => {
    const chunk = 16; // blocks per capture chunk at 4 KiB (64 KiB)
    const blocks = 2 * chunk;
    const device = new ReadTrapDevice(blocks * B, B);
    patternBytes(blocks * B, 2).copy(device.bytes);
    const originals = Buffer.from(device.bytes);
    const warnings: string[] = [];
    const log = createLogger({ write: (line) => warnings.push(line) });
    const engine = createRemapper({ device, map: RemapMap.identity(blocks * B, B), cacheBytes: 4 * B, revisitCacheBytes: 4 * chunk * B, log });
    await releasedAndConfirmed(engine, blocks);

    // One write over both chunks: the first chunk's capture read fails, the second's is slow.
    device.failAt.add(0);
    device.holdAt.add(chunk * B);
    const data = Buffer.alloc(blocks * B, 0xee);
    const write = engine.destination.write(0, data, { fua: false });
    await turns();
    expect(device.heldReads).toBe(1);
    device.letReadsGo();
    await write;
    expect(device.bytes.equals(data)).toBe(true);

    // The second chunk was read before the write: its revisits are its originals, never the new data.
    expect((await readExport(engine.source, chunk * B, chunk * B)).equals(originals.subarray(chunk * B, blocks * B))).toBe(true);
    // The first chunk's originals are gone: its revisits fail (EIO), and the log named its blocks.
    await expect(readExport(engine.source, 0, B)).rejects.toMatchObject({ errno: expect.any(Number) });
    expect(warnings.join('\n')).toContain(`disk blocks 0…${chunk - 1}`);
  });
});
