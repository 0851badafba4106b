import { expect, it } from 'vitest';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { readExport } from '../../../src/server/block-export.js';
import { buildMap, type MapKind } from './helpers/remap-harness.js';
import { MemoryDevice, patternBytes, prng } from './helpers/memory-device.js';

/**
 * The model tests keep the destination writes of one batch on different
 * blocks, because the order of overlapping writes in flight is undefined. A
 * client may still send them (the kernel does not order them), and whatever
 * order the engine picks, the result must be one: two reads in a row agree,
 * finish lands exactly what the destination served, and RAM stays within the
 * cache throughout (G3, G4, G6). Every other seed starts finish in the middle,
 * with destination writes in flight and arriving while it runs.
 */
const B = 512;
const SCALE = Math.max(1, Number(process.env.REMAP_MODEL_RUNS ?? 1));
const RUNS = 1000 * SCALE;
const KINDS: MapKind[] = ['identity', 'shift', 'permutation', 'partial'];

async function run(seed: number): Promise<void> {
  const random = prng(seed * 7919);
  const pick = (n: number): number => Math.floor(random() * n);
  const map = buildMap({ blockSize: B, fullBlocks: 6 + pick(10), tail: 0, mapKind: KINDS[seed % 4], cacheBlocks: 0, revisitBlocks: 0, safe: false, seed });
  const device = new MemoryDevice(map.diskSize, B, prng(seed));
  patternBytes(map.diskSize, seed).copy(device.bytes);
  const cacheBytes = (1 + pick(4)) * B;
  const engine = createRemapper({ device, map, cacheBytes, revisitCacheBytes: pick(3) * B });
  let peak = 0;
  device.onIo = () => (peak = Math.max(peak, engine.status().cacheBytes));
  await engine.seal();
  const D = map.destinationSize;
  let served: Buffer = Buffer.alloc(0);
  let finishing: Promise<void> | undefined;
  const finishRound = seed % 2 === 0 ? pick(8) : -1;
  for (let round = 0; round < 8; round++) {
    const requests: Array<Promise<unknown>> = [];
    if (round === finishRound) finishing = engine.finish();
    for (let k = 2 + pick(5); k > 0; k--) {
      const kind = random();
      if (kind < 0.6) {
        // Ranges overlap often: the destination is 6–15 blocks and a write up to 3.
        const aligned = random() < 0.5;
        const start = aligned ? pick(D / B) * B : pick(D);
        const length = Math.min(D - start, aligned ? B * (1 + pick(3)) : 1 + pick(3 * B));
        requests.push(
          random() < 0.15
            ? engine.destination.writeZeroes(start, length, { fua: false, mayTrim: true, fast: false })
            : engine.destination.write(start, patternBytes(length, seed * 1000 + round * 10 + k), { fua: random() < 0.2 }),
        );
      } else if (kind < 0.9) {
        // Finish takes the source away.
        if (finishing !== undefined) continue;
        const start = pick(map.diskSize);
        requests.push(readExport(engine.source, start, Math.min(map.diskSize - start, 1 + pick(4 * B))));
      } else {
        requests.push(engine.destination.flush());
      }
    }
    for (const r of await Promise.allSettled(requests)) {
      // Out of room (ENOSPC) and lost originals (EIO) are answers; anything else is a failure.
      if (r.status === 'rejected' && !/ENOSPC|EIO/.test(`${(r.reason as { errnoName?: string }).errnoName} ${(r.reason as Error).message}`)) throw r.reason;
    }
    served = await readExport(engine.destination, 0, D);
    const again = await readExport(engine.destination, 0, D);
    if (!again.equals(served)) throw new Error(`round ${round}: two destination reads in a row differ`);
  }
  // What the last round read, finish running or not, is what the disk must hold once it is done.
  await (finishing ?? engine.finish());
  const disk = Buffer.concat(map.splitBytes(0, D).map((p) => device.bytes.subarray(p.diskOffset, p.diskOffset + p.length)));
  if (!disk.equals(served)) {
    let i = 0;
    while (disk[i] === served[i]) i++;
    throw new Error(`after finish the disk differs from what destination served, first at destination byte ${i}`);
  }
  if (peak > cacheBytes) throw new Error(`G4: ${peak} bytes of RAM in use, cache is ${cacheBytes}`);
}

it(`overlapping destination writes in flight leave one result, which finish lands, also with writes during finish (${RUNS} seeds)`, async () => {
  const failures: string[] = [];
  for (let seed = 1; seed <= RUNS; seed++) {
    await run(seed).catch((err: unknown) => failures.push(`seed ${seed}: ${(err as Error).message}`));
  }
  expect(failures).toEqual([]);
}, 120_000 * SCALE);
