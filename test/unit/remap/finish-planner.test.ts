import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { FinishStoppedError, WAVE_BYTES } from '../../../src/remap/finish-planner.js';
import { RemapMap } from '../../../src/remap/map.js';
import { MemoryStateJournal } from '../../../src/remap/state-journal.js';
import type { StateRecord } from '../../../src/remap/state-journal.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';
import { Harness, type Scenario } from './helpers/remap-harness.js';

const B = 512;

function scenario(homes: number[], extra: Partial<Scenario> = {}): Scenario {
  return {
    blockSize: B,
    fullBlocks: homes.length,
    tail: 0,
    mapKind: 'identity',
    cacheBlocks: 1,
    revisitBlocks: 0,
    safe: false,
    seed: 7,
    extents: homes.map((home, d) => ({ destOffset: d * B, length: B, diskOffset: home * B })),
    ...extra,
  };
}

/** Reads disk block p in full through source, then confirms it. */
async function releaseConfirmed(h: Harness, p: number): Promise<void> {
  await h.run({ kind: 'srcRead', a: p, b: 0, aligned: true });
  await h.run({ kind: 'checkpoint' });
}

async function writeBlock(h: Harness, d: number, seed: number): Promise<void> {
  await h.run({ kind: 'dstWrite', a: d, b: 0, aligned: true, zero: false, seed });
}

describe('finish planner', () => {
  it('resolves a cycle of slots (each slot is the home of another spilled block) through RAM', async () => {
    // d0→1, d1→2, d2→0 form the cycle; d3→3 only occupies the one-block RAM so that the others spill.
    const h = new Harness(scenario([1, 2, 0, 3]));
    await h.seal();
    await writeBlock(h, 3, 100);
    await releaseConfirmed(h, 2);
    await writeBlock(h, 0, 101); // RAM is full: spills into block 2, the home of d1
    await releaseConfirmed(h, 0);
    await writeBlock(h, 1, 102); // its home (2) is a slot: spills into block 0, the home of d2
    await releaseConfirmed(h, 1);
    await writeBlock(h, 2, 103); // its home (0) is a slot: spills into block 1, the home of d0
    h.assertClean('before finish');
    expect([0, 1, 2].map((d) => h.engine.locationOf(d))).toEqual([
      { kind: 'slot', block: 2 },
      { kind: 'slot', block: 0 },
      { kind: 'slot', block: 1 },
    ]);
    await h.run({ kind: 'finish' });
    h.assertClean('after finish');
    expect(h.journal.committed.filter((r) => r.type === 'hold').length).toBeGreaterThan(0);
    await h.run({ kind: 'dstRead', a: 0, b: 4 * B, aligned: false });
    h.assertClean('after reading back');
  });

  it('moves a chain of slots in an order that never overwrites a slot still waiting to move', async () => {
    // Homes shifted by one: each spilled block's slot is the home of the next block to be written.
    const n = 8;
    const h = new Harness(scenario([...Array(n).keys()].map((d) => (d + 1) % n)));
    await h.seal();
    await writeBlock(h, n - 1, 200); // occupies the RAM (its home, block 0, is read last)
    for (let d = 0; d < n - 1; d++) {
      await releaseConfirmed(h, d + 2 < n ? d + 2 : 1);
      await writeBlock(h, d, 201 + d);
      h.assertClean(`after writing ${d}`);
    }
    const spilled = h.engine.status().spilled;
    expect(spilled).toBeGreaterThan(2);
    await h.run({ kind: 'finish' });
    h.assertClean('after finish');
    await h.run({ kind: 'dstRead', a: 0, b: n * B, aligned: false });
    h.assertClean('after reading back');
  });
});

/**
 * The halves of a disk swap places, and every destination block of the first
 * half is written while its home is unread: all but 16 blocks spill into the
 * released first half, as one long run of slots longer than a finish wave.
 * Then the second half is read too, so that finish can move everything.
 */
async function swappedHalvesSpilled(seed: number): Promise<{ engine: ReturnType<typeof createRemapper>; device: MemoryDevice; half: number; newData: Buffer }> {
  const BS = 4096;
  const half = WAVE_BYTES + 8 * 1024 * 1024;
  const device = new MemoryDevice(2 * half, BS);
  patternBytes(2 * half, seed).copy(device.bytes);
  const map = RemapMap.fromExtents(
    [
      { destOffset: 0, length: half, diskOffset: half },
      { destOffset: half, length: half, diskOffset: 0 },
    ],
    2 * half,
    BS,
  );
  const engine = createRemapper({ device, map, cacheBytes: 16 * BS, revisitCacheBytes: 0 });
  await engine.seal();
  const chunk = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < half; at += chunk.length) await engine.source.readInto(chunk, at);
  const newData = patternBytes(half, seed + 6);
  for (let at = 0; at < half; at += chunk.length) await engine.destination.write(at, newData.subarray(at, at + chunk.length), { fua: false });
  for (let at = half; at < 2 * half; at += chunk.length) await engine.source.readInto(chunk, at);
  return { engine, device, half, newData };
}

describe('finish waves', () => {
  it('read at most a wave of slot data at once, however long a spilled run is, and land it right', async () => {
    const { engine, device, half, newData } = await swappedHalvesSpilled(3);
    let inFlight = 0;
    let most = 0;
    const read = device.readInto.bind(device);
    device.readInto = async (buffer: Buffer, offset: number): Promise<void> => {
      inFlight += buffer.length;
      most = Math.max(most, inFlight);
      try {
        await read(buffer, offset);
      } finally {
        inFlight -= buffer.length;
      }
    };
    await engine.finish(() => undefined);
    expect(most).toBeGreaterThan(0);
    expect(most).toBeLessThanOrEqual(WAVE_BYTES);
    expect(device.bytes.subarray(half, 2 * half).equals(newData)).toBe(true);
  });

  it('stop between waves when the server is stopping, and resume to the same disk when run again', async () => {
    const { engine, device, half, newData } = await swappedHalvesSpilled(4);
    // Asked to stop once the first wave has landed: finish ends before the next one, saying how far it got.
    let stopping: Promise<void> | undefined;
    const first = engine.finish((p) => {
      if (p.done > 0 && stopping === undefined) stopping = engine.stopFinish();
    });
    await expect(first).rejects.toBeInstanceOf(FinishStoppedError);
    await stopping;
    const stopped = (await first.catch((err: unknown) => err)) as FinishStoppedError;
    const [, done, total] = /after (\d+) of (\d+) held/.exec(stopped.message) ?? [];
    expect(Number(done)).toBeGreaterThan(0);
    expect(Number(done)).toBeLessThan(Number(total));
    expect(stopped.fix).toMatch(/run `nbd-remapper finish` again: it resumes/);
    expect(engine.phase).toBe('finishing');

    await engine.finish(() => undefined);
    expect(engine.phase).toBe('finished');
    expect(device.bytes.subarray(half, 2 * half).equals(newData)).toBe(true);
  });

  it('break cycles of slots a wave at a time, however much RAM is free, landing everything right', async () => {
    // Eight chunks in reverse order, copied front to back with a cache of four waves: at finish, held data
    // sits in slots that are other held blocks' homes (cycles), and all of RAM is free to break them.
    const BS = 4096;
    const wave = 16 * BS;
    const chunk = 128 * BS;
    const size = 8 * chunk;
    const device = new MemoryDevice(size, BS);
    patternBytes(size, 11).copy(device.bytes);
    const map = RemapMap.fromExtents(
      [...Array(8).keys()].map((i) => ({ destOffset: i * chunk, length: chunk, diskOffset: (7 - i) * chunk })),
      size,
      BS,
    );
    const logged: number[] = [];
    const journal = new (class extends MemoryStateJournal {
      private holdBytes = 0;
      override append(record: StateRecord): void {
        super.append(record);
        if (record.type === 'hold') this.holdBytes += record.data.length;
      }
      override async commit(): Promise<void> {
        if (this.holdBytes > 0) logged.push(this.holdBytes);
        this.holdBytes = 0;
        await super.commit();
      }
    })({ durable: true });
    const engine = createRemapper({ device, map, cacheBytes: 4 * wave, revisitCacheBytes: 0, journal, finishWaveBytes: wave });
    await engine.seal();
    const step = 8 * BS;
    const piece = Buffer.alloc(step);
    const newData = patternBytes(size, 12);
    for (let at = 0; at < size; at += step) {
      await engine.source.readInto(piece, at);
      await engine.destination.write(at, newData.subarray(at, at + step), { fua: false });
    }
    await engine.destination.flush();
    logged.length = 0;
    await engine.finish(() => undefined);
    // Cycles were broken through RAM, and no break logged (or read) more than a wave's worth of data.
    expect(logged.length).toBeGreaterThan(0);
    expect(Math.max(...logged)).toBeLessThanOrEqual(wave);
    for (let i = 0; i < 8; i++) {
      const home = device.bytes.subarray((7 - i) * chunk, (8 - i) * chunk);
      expect(home.equals(newData.subarray(i * chunk, (i + 1) * chunk))).toBe(true);
    }
  });
});
