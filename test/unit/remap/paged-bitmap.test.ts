import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PagedBitmap } from '../../../src/remap/paged-bitmap.js';

const PAGE = 32768;

type Op =
  | { kind: 'set' | 'clear'; at: number }
  | { kind: 'setRange' | 'clearRange'; from: number; to: number }
  | { kind: 'setAll' | 'clearAll' };

function opArb(size: number): fc.Arbitrary<Op> {
  // Indices near page and word boundaries find more bugs than uniform ones.
  const index = fc.oneof(
    fc.integer({ min: 0, max: size - 1 }),
    fc.constantFrom(0, 31, 32, 33, PAGE - 1, PAGE, PAGE + 1, size - 1).filter((i) => i < size),
  );
  const range = fc.tuple(index, fc.integer({ min: 0, max: size })).map(([a, b]) => (a <= b ? { from: a, to: b } : { from: b, to: a }));
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constantFrom('set' as const, 'clear' as const), at: index }) },
    { weight: 4, arbitrary: range.chain((r) => fc.constantFrom('setRange' as const, 'clearRange' as const).map((kind) => ({ kind, ...r }))) },
    { weight: 1, arbitrary: fc.constantFrom({ kind: 'setAll' as const }, { kind: 'clearAll' as const }) },
  );
}

function apply(ref: Uint8Array, bm: PagedBitmap, op: Op): void {
  switch (op.kind) {
    case 'set':
      expect(bm.set(op.at)).toBe(ref[op.at] === 0);
      ref[op.at] = 1;
      return;
    case 'clear':
      expect(bm.clear(op.at)).toBe(ref[op.at] === 1);
      ref[op.at] = 0;
      return;
    case 'setRange': {
      let changed = 0;
      for (let i = op.from; i < op.to; i++) if (ref[i] === 0) changed++;
      expect(bm.setRange(op.from, op.to)).toBe(changed);
      ref.fill(1, op.from, op.to);
      return;
    }
    case 'clearRange': {
      let changed = 0;
      for (let i = op.from; i < op.to; i++) if (ref[i] === 1) changed++;
      expect(bm.clearRange(op.from, op.to)).toBe(changed);
      ref.fill(0, op.from, op.to);
      return;
    }
    case 'setAll':
      bm.setAll();
      ref.fill(1);
      return;
    case 'clearAll':
      bm.clearAll();
      ref.fill(0);
  }
}

function refNext(ref: Uint8Array, value: boolean, from: number, to: number): number {
  for (let i = Math.max(0, from); i < Math.min(to, ref.length); i++) if ((ref[i] === 1) === value) return i;
  return -1;
}

describe('PagedBitmap', () => {
  it('behaves like a plain bit array (random operations across page boundaries)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 * PAGE + 100 }).chain((size) => fc.tuple(fc.constant(size), fc.array(opArb(size), { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: size }), { minLength: 1, maxLength: 6 }))),
        ([size, ops, probes]) => {
          const ref = new Uint8Array(size);
          const bm = new PagedBitmap(size);
          for (const op of ops) apply(ref, bm, op);
          expect(bm.count).toBe(ref.reduce((n, b) => n + b, 0));
          for (const at of probes) {
            if (at < size) expect(bm.get(at)).toBe(ref[at] === 1);
            const to = Math.min(size, at + PAGE + 7);
            let n = 0;
            for (let i = at; i < to; i++) n += ref[i];
            expect(bm.countRange(at, to)).toBe(n);
            expect(bm.next(true, at)).toBe(refNext(ref, true, at, size));
            expect(bm.next(false, at)).toBe(refNext(ref, false, at, size));
          }
          const runs: Array<[number, number]> = [];
          bm.forEachRun(true, 0, size, (a, b) => runs.push([a, b]));
          const expected: Array<[number, number]> = [];
          for (let i = 0; i < size; ) {
            if (ref[i] === 0) {
              i++;
              continue;
            }
            let j = i;
            while (j < size && ref[j] === 1) j++;
            expected.push([i, j]);
            i = j;
          }
          expect(runs).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('costs no memory for uniform pages, even over 2^28 blocks (1 TiB of 4 KiB blocks)', () => {
    const bm = new PagedBitmap(2 ** 28);
    bm.setAll();
    expect(bm.count).toBe(2 ** 28);
    expect(bm.materialisedPages).toBe(0);
    bm.clear(12345);
    expect(bm.materialisedPages).toBe(1);
    expect(bm.get(12345)).toBe(false);
    expect(bm.next(false, 0)).toBe(12345);
    bm.set(12345);
    expect(bm.materialisedPages).toBe(0);
    bm.clearRange(1000, 2 ** 28 - 1000);
    expect(bm.count).toBe(2000);
    expect(bm.materialisedPages).toBe(2);
  });

  it('handles indices beyond 2^32 (512-byte blocks of a huge disk)', () => {
    const size = 2 ** 33 + 5;
    const bm = new PagedBitmap(size);
    bm.set(2 ** 32 + 1);
    bm.set(size - 1);
    expect(bm.get(2 ** 32 + 1)).toBe(true);
    expect(bm.get(2 ** 32)).toBe(false);
    expect(bm.next(true, 0)).toBe(2 ** 32 + 1);
    expect(bm.next(true, 2 ** 32 + 2)).toBe(size - 1);
    expect(bm.count).toBe(2);
  });
});
