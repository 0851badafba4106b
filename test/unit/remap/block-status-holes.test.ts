import { expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../src/remap/map.js';
import { readExport } from '../../../src/server/block-export.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const B = 4096;

/** A disk whose allocation walk (SEEK_DATA/SEEK_HOLE over a fragmented image) answers at once but ends when the test says. */
class SlowWalkDevice extends MemoryDevice {
  private open: (() => void) | undefined;
  private gate: Promise<void> | undefined = new Promise((resolve) => (this.open = resolve));

  endWalks(): void {
    this.open?.();
    this.gate = undefined;
  }

  override async allocation(offset: number, length: number): Promise<Array<{ offset: number; length: number; data: boolean }>> {
    const answer = await super.allocation(offset, length);
    await this.gate;
    return answer;
  }
}

it('a block status begun before the seal releases nothing: a hole it saw may have been filled by a source write before the seal (G2)', async () => {
  const blocks = 16;
  const device = new SlowWalkDevice(blocks * B, B);
  patternBytes(blocks * B, 3).copy(device.bytes);
  device.punchHoles([4, 5, 6, 7]);
  const engine = createRemapper({ device, map: RemapMap.identity(blocks * B, B), cacheBytes: 8 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
  const status = engine.source.blockStatus!(4 * B, 4 * B);
  const written = Buffer.alloc(4 * B, 0x5a);
  await engine.source.write(4 * B, written, { fua: false });
  await engine.seal();
  device.endWalks();
  await status;
  expect(engine.status().releasedAsHoles).toBe(0);
  // Held, since their originals were never released; had they been released as holes, these would land over the
  // originals, and a source read would then give zeroes.
  for (let i = 4; i < 8; i++) await engine.destination.write(i * B, Buffer.alloc(B, 0xd0 + i), { fua: false });
  expect((await readExport(engine.source, 4 * B, 4 * B)).equals(written)).toBe(true);

  // Asked again after the seal, the same blocks are data: still nothing released as a hole, and the copy reads them.
  await engine.source.blockStatus!(4 * B, 4 * B);
  expect(engine.status().releasedAsHoles).toBe(0);
});
