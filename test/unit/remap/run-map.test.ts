import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ExtentMap, IntervalSet } from '../../../src/remap/run-map.js';

const SPAN = 3000;

type Op = { kind: 'assign'; from: number; to: number; value: number } | { kind: 'remove'; from: number; to: number };

function opArb(maxLength: number): fc.Arbitrary<Op> {
  const rangeArb = fc
    .tuple(fc.integer({ min: 0, max: SPAN }), fc.integer({ min: 0, max: maxLength }))
    .map(([from, len]) => ({ from, to: Math.min(SPAN, from + len) }));
  return fc.oneof(
    rangeArb.chain((r) => fc.integer({ min: 0, max: 5000 }).map((value) => ({ kind: 'assign' as const, ...r, value }))),
    rangeArb.map((r) => ({ kind: 'remove' as const, ...r })),
  );
}

// Long ranges make few big runs; short ones make hundreds of runs, spread over several chunks.
const opsArb = fc.oneof(fc.array(opArb(300), { maxLength: 300 }), fc.array(opArb(4), { minLength: 300, maxLength: 1200 }));

describe('ExtentMap (run-length d → s)', () => {
  it('equals a plain per-element map after random assigns and removes; runs stay merged', () => {
    fc.assert(
      fc.property(opsArb, fc.array(fc.integer({ min: 0, max: SPAN }), { maxLength: 20 }), (ops, probes) => {
        const ref = new Map<number, number>();
        const map = new ExtentMap();
        for (const op of ops) {
          if (op.kind === 'assign') {
            map.set(op.from, op.to - op.from, op.value);
            for (let x = op.from; x < op.to; x++) ref.set(x, op.value + (x - op.from));
          } else {
            map.delete(op.from, op.to - op.from);
            for (let x = op.from; x < op.to; x++) ref.delete(x);
          }
        }
        expect(map.size).toBe(ref.size);
        const actual: Array<number | undefined> = [];
        const expected: Array<number | undefined> = [];
        for (let x = 0; x <= SPAN; x++) {
          actual.push(map.get(x));
          expected.push(ref.get(x));
        }
        expect(actual).toEqual(expected);
        // Runs: sorted, disjoint, and never two adjacent runs that continue each other.
        const runs = [...map.all()];
        for (let i = 1; i < runs.length; i++) {
          expect(runs[i].start).toBeGreaterThanOrEqual(runs[i - 1].end);
          const continues = runs[i].start === runs[i - 1].end && runs[i].value === runs[i - 1].value + (runs[i - 1].end - runs[i - 1].start);
          expect(continues).toBe(false);
        }
        for (const p of probes) {
          const to = Math.min(SPAN, p + 100);
          const clipped = map.runsIn(p, to);
          let covered = 0;
          for (const r of clipped) {
            expect(r.start).toBeGreaterThanOrEqual(p);
            expect(r.end).toBeLessThanOrEqual(to);
            for (let x = r.start; x < r.end; x++) if (ref.get(x) !== r.value + (x - r.start)) expect.fail(`runsIn: ${x} → ${r.value + (x - r.start)}, expected ${ref.get(x)}`);
            covered += r.end - r.start;
          }
          let expectedCovered = 0;
          for (let x = p; x < to; x++) if (ref.has(x)) expectedCovered++;
          expect(covered).toBe(expectedCovered);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('keeps a sequential spill of a million blocks as one run', () => {
    const map = new ExtentMap();
    for (let d = 0; d < 1_000_000; d += 1000) map.set(d, 1000, 5_000_000 + d);
    expect(map.runCount).toBe(1);
    expect(map.size).toBe(1_000_000);
    expect(map.get(999_999)).toBe(5_999_999);
  });

  it('stays correct with many runs spread over many chunks', () => {
    const map = new ExtentMap();
    for (let i = 0; i < 5000; i++) map.set(i * 3, 1, i * 7);
    expect(map.runCount).toBe(5000);
    map.delete(3000, 6000);
    expect(map.runCount).toBe(3000);
    expect(map.get(2997)).toBe(999 * 7);
    expect(map.get(9000)).toBe(3000 * 7);
    expect(map.get(3003)).toBeUndefined();
  });
});

describe('IntervalSet', () => {
  it('equals a plain set after random adds and removes', () => {
    fc.assert(
      fc.property(opsArb, (ops) => {
        const ref = new Set<number>();
        const set = new IntervalSet();
        for (const op of ops) {
          if (op.kind === 'assign') {
            set.add(op.from, op.to);
            for (let x = op.from; x < op.to; x++) ref.add(x);
          } else {
            set.remove(op.from, op.to);
            for (let x = op.from; x < op.to; x++) ref.delete(x);
          }
        }
        expect(set.size).toBe(ref.size);
        const actual: boolean[] = [];
        const expected: boolean[] = [];
        for (let x = 0; x <= SPAN; x++) {
          actual.push(set.has(x));
          expected.push(ref.has(x));
        }
        expect(actual).toEqual(expected);
        const runs = [...set.all()];
        for (let i = 1; i < runs.length; i++) expect(runs[i].start).toBeGreaterThan(runs[i - 1].end);
      }),
      { numRuns: 150 },
    );
  });

  it('holds the zeroes of a whole 1 TiB destination as one run', () => {
    const set = new IntervalSet();
    set.add(0, 2 ** 28);
    set.remove(1000, 1001);
    expect(set.runCount).toBe(2);
    expect(set.size).toBe(2 ** 28 - 1);
    expect(set.coveredIn(990, 1010)).toBe(19);
  });
});
