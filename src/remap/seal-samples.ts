import { createHash } from 'node:crypto';
import type { BlockDevice } from './block-device.js';
import type { RemapMap } from './map.js';
import type { SealSample } from './state-journal.js';

/** Blocks sampled at sealing. Few: reading them costs a few milliseconds at every seal and reopen. */
export const SEAL_SAMPLE_COUNT = 16;

/** Disk blocks spread evenly over the disk (first and last included). */
export function sampleBlocks(diskBlocks: number): number[] {
  const out = new Set<number>();
  const n = Math.min(SEAL_SAMPLE_COUNT, diskBlocks);
  for (let i = 0; i < n; i++) out.add(n === 1 ? 0 : Math.round((i * (diskBlocks - 1)) / (n - 1)));
  return [...out];
}

export function hashBlock(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32);
}

/**
 * Hashes of a few originals, taken when the source is sealed. From then on a
 * disk block changes only after a committed `destroy` record, so on reopen
 * every sampled block not destroyed must hash the same — or the state
 * belongs to another disk.
 */
export async function sampleOriginals(device: BlockDevice, map: RemapMap): Promise<SealSample[]> {
  const out: SealSample[] = [];
  for (const block of sampleBlocks(map.diskBlocks)) {
    const data = Buffer.alloc(map.diskBlockLength(block));
    await device.readInto(data, block * map.blockSize);
    out.push({ block, hash: hashBlock(data) });
  }
  return out;
}
