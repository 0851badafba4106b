import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RangeIndex, type Span } from '../../../src/remap/range-index.js';

/** The index against a plain list: the same entries overlap every query, each reported once. */
describe('RangeIndex', () => {
  it('finds exactly the overlapping entries, once each, whatever their widths', () => {
    const span = fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 20_000 })));
    fc.assert(
      fc.property(
        fc.array(fc.record({ add: span, drop: fc.boolean() }), { maxLength: 200 }),
        fc.array(span, { minLength: 1, maxLength: 20 }),
        (ops, queries) => {
          const index = new RangeIndex<Span>();
          const live = new Set<Span>();
          for (const op of ops) {
            const entry = { start: op.add[0], end: op.add[0] + op.add[1] };
            index.add(entry);
            live.add(entry);
            // Drops in bursts too, so the index crosses between its list and bucket forms both ways.
            for (let k = op.drop ? Math.min(live.size - 1, 1 + (op.add[1] % 50)) : 0; k > 0; k--) {
              const victim = [...live][Math.floor(live.size / 2)];
              index.delete(victim);
              live.delete(victim);
            }
          }
          expect(index.size).toBe(live.size);
          for (const [start, length] of queries) {
            const end = start + length;
            const expected = [...live].filter((e) => e.start < end && start < e.end);
            const found = index.overlapping(start, end);
            expect(found.length).toBe(expected.length);
            expect(new Set(found)).toEqual(new Set(expected));
            expect(index.some(start, end)).toBe(expected.length > 0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
