import fc from 'fast-check';
import { AllocationFlag, type StatusDescriptor } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { withHoles } from '../../../src/remap/allocation-descriptors.js';

const HOLE = AllocationFlag.HOLE | AllocationFlag.ZERO;

/** Flags per byte: the plain reference. */
function perByte(descriptors: readonly StatusDescriptor[]): number[] {
  return descriptors.flatMap((d) => Array.from({ length: d.length }, () => d.flags));
}

describe('withHoles', () => {
  it('reports exactly the hole ranges as HOLE|ZERO, leaves the rest as it was, and merges neighbours', () => {
    const descriptors = fc.array(fc.record({ length: fc.integer({ min: 1, max: 40 }), flags: fc.constantFrom(0, HOLE, AllocationFlag.HOLE) }), { minLength: 1, maxLength: 8 });
    fc.assert(
      fc.property(descriptors, fc.nat({ max: 1000 }), fc.array(fc.nat({ max: 400 }), { maxLength: 8 }), (given, offset, cuts) => {
        const total = given.reduce((n, d) => n + d.length, 0);
        // Disjoint sorted ranges inside [offset, offset+total) from the cut points.
        const points = [...new Set(cuts.map((c) => c % (total + 1)))].sort((a, b) => a - b);
        const holes: Array<{ start: number; end: number }> = [];
        for (let i = 0; i + 1 < points.length; i += 2) if (points[i] < points[i + 1]) holes.push({ start: offset + points[i], end: offset + points[i + 1] });
        const got = withHoles(given, offset, holes);
        const expected = perByte(given).map((flags, i) => (holes.some((h) => offset + i >= h.start && offset + i < h.end) ? HOLE : flags));
        expect(perByte(got)).toEqual(expected);
        for (let i = 1; i < got.length; i++) expect(got[i].flags).not.toBe(got[i - 1].flags);
      }),
      { numRuns: 500 },
    );
  });
});
