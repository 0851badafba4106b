import { describe, expect, it } from 'vitest';
import type { NbdError } from 'nbd-protocol-ts';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import type { RemapEngine } from '../../../src/remap/remap-engine.js';
import { HeldWritesDevice, turns } from './helpers/held-io.js';
import { patternBytes } from './helpers/memory-device.js';
import { heldBeforeFinish } from './helpers/held-before-finish.js';

const B = 4096;
const W = { fua: false };
const block = (fill: number): Buffer => Buffer.alloc(B, fill);

async function settle<T>(p: Promise<T>): Promise<{ ok: true } | { ok: false; err: NbdError }> {
  return p.then(() => ({ ok: true as const }), (err: NbdError) => ({ ok: false as const, err }));
}

/**
 * RAM or a slot that engine I/O in flight is about to give back is room a
 * write may wait for (I/O in flight, G9) rather than fail with ENOSPC a moment
 * too early (RemapState.beginRoomMove).
 */
describe('room that a move in flight is about to give back (sealed, before finish)', () => {
  it('a concurrent write waits for the eviction in flight instead of failing ENOSPC', async () => {
    // Identity map, 6 blocks, cache = 2 blocks, no revisit cache.
    const device = new HeldWritesDevice(6 * B, B);
    patternBytes(device.size, 3).copy(device.bytes);
    const engine: RemapEngine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    await engine.destination.write(0, block(0xa0), W); // RAM (home unread)
    await engine.destination.write(B, block(0xa1), W); // RAM (home unread)
    await engine.source.readInto(Buffer.alloc(2 * B), 0); // releases homes 0,1
    await engine.checkpoint(); // d0,d1 are confirmed-landable
    device.hold();
    // Write A (d2, home unread): RAM full -> evicts the run d0,d1 (2 blocks) and takes 1 block of the room.
    const a = settle(engine.destination.write(2 * B, block(0xa2), W));
    await turns(50);
    expect(device.pending).toBeGreaterThan(0); // A's eviction is in flight
    // Write B (d3, home unread) while A's eviction is in flight: when it is done there is a free block of RAM for it.
    const b = settle(engine.destination.write(3 * B, block(0xa3), W));
    await turns(50);
    device.letGo();
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.ok).toBe(true);
    if (!rb.ok) throw new Error(`write B failed: ${rb.err.errnoName} ${rb.err.message}`);
    // And without the concurrency the same write succeeds (control): the room exists once A's eviction is done.
    expect(engine.locationOf(3)).toEqual({ kind: 'ram' });
  });

  it('control: the same writes one after the other both succeed', async () => {
    const device = new HeldWritesDevice(6 * B, B);
    patternBytes(device.size, 3).copy(device.bytes);
    const engine: RemapEngine = createRemapper({ device, cacheBytes: 2 * B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    await engine.destination.write(0, block(0xa0), W);
    await engine.destination.write(B, block(0xa1), W);
    await engine.source.readInto(Buffer.alloc(2 * B), 0);
    await engine.checkpoint();
    await engine.destination.write(2 * B, block(0xa2), W);
    await engine.destination.write(3 * B, block(0xa3), W);
    expect(engine.locationOf(2)).toEqual({ kind: 'ram' });
    expect(engine.locationOf(3)).toEqual({ kind: 'ram' });
  });
  it('a concurrent write waits for a land-at-once in flight that frees a RAM block, instead of failing ENOSPC', async () => {
    // Identity map, 6 blocks, cache = 1 block.
    const device = new HeldWritesDevice(6 * B, B);
    patternBytes(device.size, 3).copy(device.bytes);
    const engine: RemapEngine = createRemapper({ device, cacheBytes: B, revisitCacheBytes: 0, keptEdgeBytes: 0 });
    await engine.seal();
    await engine.destination.write(0, block(0xa0), W); // RAM: home 0 unread
    await engine.source.readInto(Buffer.alloc(B), 0);
    await engine.checkpoint(); // home 0 confirmed
    device.hold();
    // Rewrite d0: lands at once at 0; its RAM copy is dropped when that write is done.
    const a = settle(engine.destination.write(0, block(0xb0), W));
    await turns(50);
    expect(device.pending).toBeGreaterThan(0);
    // d1 (home unread) needs the one block of RAM that the landing in flight frees.
    const b = settle(engine.destination.write(B, block(0xa1), W));
    await turns(50);
    device.letGo();
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.ok).toBe(true);
    if (!rb.ok) throw new Error(`write of d1 failed: ${rb.err.errnoName} ${rb.err.message}`);
    expect(engine.locationOf(1)).toEqual({ kind: 'ram' });
  });
});

/** Settles within `ms` or reports 'pending'. */
async function within<T>(p: Promise<T>, ms: number): Promise<{ ok: true; value: T } | { ok: false; err: unknown } | 'pending'> {
  return Promise.race([
    p.then((value) => ({ ok: true as const, value }), (err: unknown) => ({ ok: false as const, err })),
    new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms)),
  ]);
}

/**
 * Identity map, 5 blocks, cache = 2 blocks. Before finish: d0,d1 in RAM (homes unread), d2 spilled into
 * block 4 (the home of d4), d3 landed. Finish's first wave locks d0,d1 (all of RAM), reserves homes 0,1,2
 * and moves d2 out of slot 4. While the wave's writes are in flight, a write of d4 (home 4 = a slot still
 * waiting to move) finds: RAM full, every RAM block locked by the wave, no free slot candidate.
 */
async function setup(): Promise<{ engine: RemapEngine; device: HeldWritesDevice }> {
  return heldBeforeFinish({ blocks: 5, cacheBlocks: 2, landed: 1, seed: 7 });
}

describe('room that a finish wave in flight is about to give back', () => {
  it('a destination write during a finish wave that holds all of RAM waits for the wave instead of failing ENOSPC', async () => {
    const { engine, device } = await setup();
    device.hold();
    const finished = engine.finish();
    await turns(50);
    expect(device.pending).toBeGreaterThan(0); // the wave's writes are in flight
    const write = engine.destination.write(4 * B, block(0xa4), W);
    const early = await within(write, 200);
    device.letGo();
    await finished;
    const out = early === 'pending' ? await within(write, 2000) : early;
    if (out !== 'pending' && !out.ok) {
      const e = out.err as NbdError;
      throw new Error(`write of d4 during finish failed: ${e.errnoName ?? ''} ${e.message}`);
    }
    expect(out).not.toBe('pending');
    const read = Buffer.alloc(B);
    await engine.destination.readInto(read, 4 * B);
    expect(read.equals(block(0xa4))).toBe(true);
  });
});
