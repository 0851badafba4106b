import { describe, expect, it } from 'vitest';
import type { RemapEngine } from '../../../src/remap/remap-engine.js';
import { GatedJournal, HeldWritesDevice, turns } from './helpers/held-io.js';
import { heldBeforeFinish } from './helpers/held-before-finish.js';

const B = 4096;
const W = { fua: false };
const block = (fill: number): Buffer => Buffer.alloc(B, fill);

async function outcome(p: Promise<unknown>, ms: number): Promise<string> {
  return Promise.race([
    p.then(() => 'ok', (e: Error & { errnoName?: string }) => `failed ${e.errnoName ?? ''} ${e.message}`),
    new Promise<string>((r) => setTimeout(() => r('HUNG'), ms)),
  ]);
}

async function setup(journal?: GatedJournal): Promise<{ engine: RemapEngine; device: HeldWritesDevice }> {
  // Identity, 8 blocks, cache 3 blocks: d0,d1,d2 in RAM, d3 spilled into 7, d4/d5 landed.
  return heldBeforeFinish({ blocks: 8, cacheBlocks: 3, landed: 2, seed: 9, engine: { journal } });
}

describe('requests overlapping a finish wave in flight complete', () => {
  it('FLUSH, TRIM, WRITE_ZEROES, partial and whole writes of blocks the wave is moving', async () => {
    const journal = new GatedJournal();
    const { engine, device } = await setup(journal);
    device.hold();
    const finished = engine.finish();
    await turns(50);
    expect(device.pending).toBeGreaterThan(0);
    journal.close();
    const reqs: Record<string, Promise<unknown>> = {
      flush: engine.destination.flush(),
      trimRam: engine.destination.trim(0, B, W),
      zeroRam: engine.destination.writeZeroes(B, B, { fua: false, fast: false, mayTrim: false }),
      partialRam: engine.destination.write(2 * B + 10, Buffer.alloc(10, 0xee), W),
      wholeSlotMoving: engine.destination.write(3 * B, block(0xb3), { fua: true }),
      zeroLanded: engine.destination.writeZeroes(4 * B, 2 * B, { fua: false, fast: true, mayTrim: false }),
    };
    await turns(50);
    device.letGo();
    await turns(20);
    journal.release();
    const results: Record<string, string> = {};
    for (const [k, p] of Object.entries(reqs)) results[k] = await outcome(p, 3000);
    results.finish = await outcome(finished, 3000);
    expect(results).toEqual({ flush: 'ok', trimRam: 'ok', zeroRam: 'ok', partialRam: 'ok', wholeSlotMoving: 'ok', zeroLanded: 'ok', finish: 'ok' });
    const out = Buffer.alloc(8 * B);
    await engine.destination.readInto(out, 0);
    expect(out.subarray(B, 2 * B).equals(Buffer.alloc(B))).toBe(true);
    expect(out.subarray(3 * B, 4 * B).equals(block(0xb3))).toBe(true);
    expect(out.subarray(4 * B, 6 * B).equals(Buffer.alloc(2 * B))).toBe(true);
    expect(device.bytes.subarray(0, 8 * B).equals(out)).toBe(true);
  });
});
