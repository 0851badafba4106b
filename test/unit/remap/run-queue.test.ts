import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RunQueue } from '../../../src/remap/run-queue.js';

describe('RunQueue', () => {
  it('hands out candidates in push order, skipping non-candidates, in runs of consecutive blocks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 20 })), { maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 520 }), { maxLength: 40 }),
        fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 50 }),
        (pushes, excludedList, takes) => {
          const q = new RunQueue();
          const order: number[] = [];
          for (const [start, count] of pushes) {
            q.push(start, count);
            for (let i = 0; i < count; i++) order.push(start + i);
          }
          const excluded = new Set(excludedList);
          const taken = new Set<number>();
          const isCandidate = (b: number): boolean => !excluded.has(b) && !taken.has(b);
          const got: number[] = [];
          for (const max of takes) {
            const run = q.take(max, isCandidate);
            if (run === undefined) break;
            expect(run.count).toBeGreaterThan(0);
            expect(run.count).toBeLessThanOrEqual(max);
            for (let i = 0; i < run.count; i++) {
              expect(isCandidate(run.start + i)).toBe(true);
              taken.add(run.start + i);
              got.push(run.start + i);
            }
          }
          // What came out is the queue order with non-candidates (and repeats) dropped, as a prefix.
          const expected: number[] = [];
          const seen = new Set<number>();
          for (const b of order) {
            if (excluded.has(b) || seen.has(b)) continue;
            seen.add(b);
            expected.push(b);
          }
          expect(got).toEqual(expected.slice(0, got.length));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('appendAll moves runs behind and empties the source', () => {
    const a = new RunQueue();
    const b = new RunQueue();
    a.push(10, 2);
    b.push(12, 3);
    b.push(40, 1);
    a.appendAll(b);
    expect(b.isEmpty).toBe(true);
    expect(a.take(10, () => true)).toEqual({ start: 10, count: 5 });
    expect(a.take(10, () => true)).toEqual({ start: 40, count: 1 });
    expect(a.take(10, () => true)).toBeUndefined();
  });
  it('peek shows the blocks the next takes hand out first, and changes nothing they hand out', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 20 })), { maxLength: 30 }),
        fc.array(fc.integer({ min: 0, max: 520 }), { maxLength: 60 }),
        fc.integer({ min: 1, max: 16 }),
        (pushes, excludedList, max) => {
          const a = new RunQueue();
          const b = new RunQueue();
          for (const [start, count] of pushes) {
            a.push(start, count);
            b.push(start, count);
          }
          const excluded = new Set(excludedList);
          const isCandidate = (x: number): boolean => !excluded.has(x);
          const peeked = a.peek(max, isCandidate).flatMap((r) => Array.from({ length: r.count }, (_, i) => r.start + i));
          expect(peeked.length).toBeLessThanOrEqual(max);
          const takeAll = (q: RunQueue): number[] => {
            const out: number[] = [];
            for (let run = q.take(4, isCandidate); run !== undefined; run = q.take(4, isCandidate)) {
              for (let i = 0; i < run.count; i++) out.push(run.start + i);
            }
            return out;
          };
          const fromPeeked = takeAll(a);
          expect(fromPeeked).toEqual(takeAll(b));
          expect(fromPeeked.slice(0, peeked.length)).toEqual(peeked);
          // Within its look window peek misses nothing: with candidates left, it finds at least one.
          if (fromPeeked.length > 0) expect(peeked.length).toBeGreaterThan(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});
