import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Harness, type MapKind, type Op, type Scenario } from './helpers/remap-harness.js';

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  blockSize: fc.constantFrom(512, 512, 4096),
  fullBlocks: fc.noBias(fc.integer({ min: 3, max: 16 })),
  tail: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 1, max: 511 })),
  mapKind: fc.constantFrom<MapKind>('identity', 'shift', 'permutation', 'partial'),
  cacheBlocks: fc.integer({ min: 1, max: 4 }),
  revisitBlocks: fc.integer({ min: 0, max: 3 }),
  safe: fc.boolean(),
  holes: fc.boolean(),
  keptEdgeBlocks: fc.constantFrom(0, 0, 1, 2),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

const n = fc.nat({ max: 1 << 20 });
// Offsets uniform over the disk (fast-check otherwise favours small numbers: block 0 again and again).
const spread = fc.noBias(fc.nat({ max: 1 << 20 }));
const range = { a: spread, b: n, aligned: fc.boolean() };

const readOps: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('srcRead' as const), ...range, aligned: fc.constantFrom(true, true, true, false) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('dstRead' as const), ...range }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('srcStatus' as const), ...range }) },
);
const destinationMutations: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('dstWrite' as const), ...range, zero: fc.constantFrom(false, false, false, true), seed: n }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dstZero' as const), ...range }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dstTrim' as const), ...range }) },
);
const beforeSeal: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('srcWrite' as const), ...range, zero: fc.constant(false), seed: n }),
  fc.record({ kind: fc.constant('srcTrim' as const), ...range }),
  readOps,
  destinationMutations,
  fc.constantFrom<Op>({ kind: 'flush' }, { kind: 'checkpoint' }, { kind: 'finish' }),
);
const afterSeal: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: readOps },
  { weight: 8, arbitrary: destinationMutations },
  { weight: 1, arbitrary: fc.constantFrom<Op>({ kind: 'flush' }, { kind: 'checkpoint' }, { kind: 'checkpoint' }) },
  { weight: 1, arbitrary: fc.constantFrom<Op>({ kind: 'seal' }, { kind: 'attach' }, { kind: 'detach' }, { kind: 'finish' }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('srcWrite' as const), ...range, zero: fc.constant(false), seed: n }) },
);
const batchOf = (inner: fc.Arbitrary<Op>): fc.Arbitrary<Op> => fc.array(inner, { minLength: 2, maxLength: 6 }).map((ops) => ({ kind: 'batch' as const, ops }));

function describeOp(op: Op): string {
  return op.kind === 'batch' ? `batch[${op.ops.map(describeOp).join(', ')}]` : JSON.stringify(op);
}

/** REMAP_MODEL_RUNS=20 multiplies the number of runs for a long bug hunt. */
const SCALE = Math.max(1, Number(process.env.REMAP_MODEL_RUNS ?? 1));
/** The default test timeout, per multiple of the runs: a long hunt must not end as a timeout. */
const TIMEOUT_MS = 60_000 * SCALE;

const totals: Record<string, number> = {};

async function play(scenario: Scenario, pre: Op[], main: Op[]): Promise<void> {
  const h = new Harness(scenario);
  const done: string[] = [];
  const step = async (op: Op): Promise<void> => {
    done.push(describeOp(op));
    try {
      await h.run(op);
      h.assertClean(`after ${done[done.length - 1]}`);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nscenario ${JSON.stringify(scenario)}, map ${JSON.stringify(h.map.toJSON())}\nops:\n  ${done.join('\n  ')}`, { cause: err });
    }
  };
  for (const op of pre) await step(op);
  await step({ kind: 'seal' });
  for (const op of main) await step(op);
  // Every run ends with a finish, so G6 is checked every time.
  await step({ kind: 'detach' });
  await step({ kind: 'finish' });
  await step({ kind: 'dstRead', a: 0, b: 1 << 20, aligned: true });
  for (const [key, n] of Object.entries(h.coverage())) totals[key] = (totals[key] ?? 0) + n;
}

/** The runs together must reach every path that matters, or a passing property proves little. */
function expectCoverage(label: string, keys: string[]): void {
  console.log(`${label}: ${JSON.stringify(totals)}`);
  for (const key of keys) expect(totals[key] ?? 0, `no run exercised ${key}`).toBeGreaterThan(0);
  for (const key of Object.keys(totals)) delete totals[key];
}

describe('remapping engine against a reference model (G1, G2, G3, G4, G6)', () => {
  it('random sequential operations, every kind of map, caches of 1–4 blocks', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, fc.array(beforeSeal, { maxLength: 8, size: 'max' }), fc.array(afterSeal, { minLength: 10, maxLength: 80, size: 'max' }), (scenario, pre, main) => play(scenario, pre, main)),
      { numRuns: 600 * SCALE },
    );
    // Cycles of slots at finish are rare at random; finish-planner.test.ts builds them on purpose.
    expectCoverage('sequential', ['spill', 'land', 'zero', 'destroy', 'finish:land', 'enospc', 'eio', 'revisitHits', 'checkpoint', 'free', 'safeRuns', 'release-hole']);
  }, TIMEOUT_MS);

  it('concurrent batches: overlapping source reads, destination writes and reads interleaved at random', async () => {
    const mixed = fc.oneof({ weight: 2, arbitrary: batchOf(fc.oneof(readOps, destinationMutations, fc.constantFrom<Op>({ kind: 'flush' }, { kind: 'checkpoint' }))) }, { weight: 1, arbitrary: afterSeal });
    await fc.assert(
      fc.asyncProperty(scenarioArb, fc.array(beforeSeal, { maxLength: 4 }), fc.array(mixed, { minLength: 5, maxLength: 40, size: 'max' }), (scenario, pre, main) => play(scenario, pre, main)),
      { numRuns: 400 * SCALE },
    );
    expectCoverage('concurrent', ['spill', 'land', 'finish:land', 'enospc', 'eio', 'revisitHits', 'release-hole']);
  }, TIMEOUT_MS);
});
