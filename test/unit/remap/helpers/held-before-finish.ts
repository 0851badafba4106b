import { expect } from 'vitest';
import { createRemapper, type RemapperOptions } from '../../../../src/remap/create-remapper.js';
import type { RemapEngine } from '../../../../src/remap/remap-engine.js';
import { HeldWritesDevice } from './held-io.js';
import { patternBytes } from './memory-device.js';

const W = { fua: false };

/**
 * The layout finish tests start from, over an identity map of `blocks`
 * blocks with a cache of `cacheBlocks`: d0 … d(c-1) held in RAM (their homes
 * unread), d(c) spilled into the last block (read and confirmed for it), then
 * `landed` blocks written after their homes were read, landed. Block d is
 * written as B bytes of 0xa0 + d. The device holds writes on request.
 */
export async function heldBeforeFinish(options: {
  blocks: number;
  cacheBlocks: number;
  landed: number;
  B?: number;
  seed?: number;
  engine?: Partial<RemapperOptions>;
}): Promise<{ engine: RemapEngine; device: HeldWritesDevice }> {
  const B = options.B ?? 4096;
  const { blocks, cacheBlocks: c, landed } = options;
  const device = new HeldWritesDevice(blocks * B, B);
  patternBytes(device.size, options.seed ?? 1).copy(device.bytes);
  const engine = createRemapper({ device, cacheBytes: c * B, revisitCacheBytes: 0, keptEdgeBytes: 0, ...options.engine });
  const block = (d: number): Buffer => Buffer.alloc(B, 0xa0 + d);
  await engine.seal();
  await engine.source.readInto(Buffer.alloc(B), (blocks - 1) * B);
  await engine.checkpoint();
  for (let d = 0; d <= c; d++) await engine.destination.write(d * B, block(d), W);
  expect(engine.locationOf(c)).toEqual({ kind: 'slot', block: blocks - 1 });
  await engine.source.readInto(Buffer.alloc(landed * B), (c + 1) * B);
  await engine.checkpoint();
  for (let d = c + 1; d <= c + landed; d++) await engine.destination.write(d * B, block(d), W);
  for (let d = c + 1; d <= c + landed; d++) expect(engine.locationOf(d)).toEqual({ kind: 'home', block: d });
  return { engine, device };
}
