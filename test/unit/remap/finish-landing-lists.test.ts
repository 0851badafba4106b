import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { HeldWritesDevice, turns } from './helpers/held-io.js';
import { patternBytes } from './helpers/memory-device.js';

const B = 4096;
const W = { fua: false };
const block = (fill: number): Buffer => Buffer.alloc(B, fill);

describe('RAM held from before finish lands under pressure during finish', () => {
  it('a write that needs room during finish spills into the home of an unlocked RAM block instead of landing it', async () => {
    // Identity, 6 blocks, cache 2 blocks, finish waves of 1 block. d0,d1 in RAM (homes unread), d2 spilled into 5, d3/d4 landed.
    const device = new HeldWritesDevice(6 * B, B);
    patternBytes(device.size, 4).copy(device.bytes);
    const engine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: 0, finishWaveBytes: B });
    await engine.seal();
    await engine.source.readInto(Buffer.alloc(B), 5 * B);
    await engine.checkpoint();
    for (let d = 0; d < 3; d++) await engine.destination.write(d * B, block(0xa0 + d), W);
    expect(engine.locationOf(2)).toEqual({ kind: 'slot', block: 5 });
    await engine.source.readInto(Buffer.alloc(2 * B), 3 * B);
    await engine.checkpoint();
    await engine.destination.write(3 * B, block(0xa3), W);
    await engine.destination.write(4 * B, block(0xa4), W);
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
