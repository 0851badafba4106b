import fc from 'fast-check';
import { expect, it } from 'vitest';
import { BlockMap, BlockSet } from '../../../src/remap/block-table.js';

type Op = { kind: 'set' | 'delete' | 'get'; block: number; value: number };

// Mostly a small range, so keys collide, come back and leave; runs long enough that the table grows several times.
const blocks = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 300 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 40 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1) },
);
const ops = fc.array(fc.record({ kind: fc.constantFrom<Op['kind']>('set', 'set', 'delete', 'get'), block: blocks, value: fc.integer() }), {
  minLength: 100,
  maxLength: 1000,
});

it('BlockMap behaves as a Map of block numbers through any run of sets, deletes and gets (no hole left by a deletion hides a member)', () => {
  fc.assert(
    fc.property(ops, (run) => {
      const table = new BlockMap<number>();
      const model = new Map<number, number>();
      for (const op of run) {
        if (op.kind === 'set') {
          table.set(op.block, op.value);
          model.set(op.block, op.value);
        } else if (op.kind === 'delete') {
          expect(table.delete(op.block)).toBe(model.delete(op.block));
        }
        expect(table.get(op.block)).toBe(model.get(op.block));
        expect(table.has(op.block)).toBe(model.has(op.block));
        expect(table.size).toBe(model.size);
      }
      expect([...table.keys()].sort((a, b) => a - b)).toEqual([...model.keys()].sort((a, b) => a - b));
      for (const [k, v] of model) expect(table.get(k)).toBe(v);
    }),
    { numRuns: 200 },
  );
});

it('BlockMap keeps every value through a long churn of sets and deletes', () => {
  const table = new BlockMap<number>();
  const model = new Map<number, number>();
  let seed = 1;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  for (let i = 0; i < 50_000; i++) {
    const block = Math.floor(next() * 5000);
    if (next() < 0.55) {
      table.set(block, i);
      model.set(block, i);
    } else {
      expect(table.delete(block)).toBe(model.delete(block));
    }
  }
  expect(table.size).toBe(model.size);
  for (const [block, value] of model) expect(table.get(block)).toBe(value);
  for (const block of table.keys()) expect(model.has(block)).toBe(true);
});

it('BlockSet keeps members through heavy churn in a table that stays small (a cache cycling blocks through)', () => {
  const set = new BlockSet();
  const model = new Set<number>();
  // 16 members at a time, 10,000 entering and leaving: the table must not grow past what 16 need.
  for (let b = 0; b < 10_000; b++) {
    set.add(b * 7919);
    model.add(b * 7919);
    if (b >= 16) {
      expect(set.delete((b - 16) * 7919)).toBe(true);
      model.delete((b - 16) * 7919);
    }
  }
  expect(set.size).toBe(16);
  expect(set.capacity).toBeLessThanOrEqual(64);
  expect([...set].sort((a, b) => a - b)).toEqual([...model].sort((a, b) => a - b));
  expect(set.delete(1)).toBe(false);

  // Drained (finish landing the cache): the table shrinks with it, so walking it stays proportional to what it holds.
  set.clear();
  for (let b = 0; b < 10_000; b++) set.add(b);
  expect(set.capacity).toBeGreaterThanOrEqual(20_000);
  for (let b = 0; b < 10_000 - 10; b++) set.delete(b);
  expect(set.capacity).toBeLessThanOrEqual(8 * (set.size + 1));
  expect([...set].filter((b) => b >= 10_000 - 10).length).toBe(10);
  set.clear();
  expect(set.size).toBe(0);
  expect(set.has(9_999 * 7919)).toBe(false);
});

it('refuses what is not a block number', () => {
  expect(() => new BlockSet().add(-1)).toThrow(RangeError);
  expect(() => new BlockMap<string>().set(1.5, 'x')).toThrow(RangeError);
});

it('lists the members of a range whether the table or the range is the smaller, and may be deleted from while listed', () => {
  const map = new BlockMap<number>();
  for (const b of [3, 7, 8, 100, 5_000_000]) map.set(b, b);
  const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
  // A range wider than the table: the members are walked.
  expect(sorted(map.membersIn(0, 10_000_000))).toEqual([3, 7, 8, 100, 5_000_000]);
  expect(sorted(map.membersIn(4, 101))).toEqual([7, 8, 100]);
  // A range narrower than the table: the range is probed.
  expect(sorted(map.membersIn(6, 9))).toEqual([7, 8]);
  expect(map.membersIn(9, 9)).toEqual([]);
  expect(map.membersIn(9, 3)).toEqual([]);
  for (const b of map.membersIn(0, 10)) map.delete(b);
  expect(sorted([...map.keys()])).toEqual([100, 5_000_000]);
  expect(new BlockSet().membersIn(0, 100)).toEqual([]);
});
