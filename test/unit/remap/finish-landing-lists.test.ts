import { describe, expect, it } from 'vitest';
import { heldBeforeFinish } from './helpers/held-before-finish.js';
import { turns } from './helpers/held-io.js';

const B = 4096;
const W = { fua: false };
const block = (fill: number): Buffer => Buffer.alloc(B, fill);

describe('RAM held from before finish lands under pressure during finish', () => {
  it('a write that needs room during finish spills into the home of an unlocked RAM block instead of landing it', async () => {
    // Identity, 6 blocks, cache 2 blocks, finish waves of 1 block. d0,d1 in RAM (homes unread), d2 spilled into 5, d3/d4 landed.
    const { engine, device } = await heldBeforeFinish({ blocks: 6, cacheBlocks: 2, landed: 2, seed: 4, engine: { finishWaveBytes: B } });
    device.hold((offset) => offset === 0); // holds wave 1's write of d0 only
    const finished = engine.finish();
    await turns(50);
    expect(device.pending).toBeGreaterThan(0); // wave 1 moves d0 only; d1 stays in RAM, unlocked, home 1 free
    const w = engine.destination.write(5 * B, block(0xa5), W); // home 5 is d2's slot: needs room
    await w;
    const where = { d1: engine.locationOf(1), d5: engine.locationOf(5) };
    device.letGo();
    await finished;
    // Expected (pressure step a, "land RAM data whose home is confirmed"): d1 lands at 1 and d5 takes its RAM.
    expect(where).toEqual({ d1: { kind: 'home', block: 1 }, d5: { kind: 'ram' } });
  });
});
