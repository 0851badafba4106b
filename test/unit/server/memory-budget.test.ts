import { describe, expect, it } from 'vitest';
import { GUARANTEED_REQUEST_BYTES, MemoryBudget } from '../../../src/server/memory-budget.js';

const MiB = 1024 * 1024;

describe('MemoryBudget', () => {
  it('lets any request in under the limit; over it, only a small one on a connection that holds nothing', () => {
    const budget = new MemoryBudget(8 * MiB);
    expect(budget.allows(32 * MiB, 4 * MiB)).toBe(true);
    budget.take(8 * MiB);
    expect(budget.exhausted).toBe(true);
    expect(budget.allows(0, 4 * MiB)).toBe(true);
    expect(budget.allows(4096, 4 * MiB)).toBe(false);
    expect(budget.allows(GUARANTEED_REQUEST_BYTES, 0)).toBe(true);
    expect(budget.allows(GUARANTEED_REQUEST_BYTES + 1, 0)).toBe(false);
    budget.give(1);
    expect(budget.exhausted).toBe(false);
    expect(budget.allows(4096, 4 * MiB)).toBe(true);
  });

  it('wakes waiting connections in order, and only while there is room', () => {
    const budget = new MemoryBudget(2 * MiB);
    budget.take(3 * MiB);
    const woken: string[] = [];
    // Each woken connection takes 1 MiB, as a pump would.
    const waiter = (name: string) => () => {
      woken.push(name);
      budget.take(MiB);
    };
    const a = waiter('a');
    const b = waiter('b');
    const c = waiter('c');
    budget.wait(a);
    budget.wait(b);
    budget.wait(c);
    budget.cancel(b);
    budget.give(MiB); // 2 MiB used: still no room
    expect(woken).toEqual([]);
    budget.give(MiB); // 1 MiB: a wakes and takes 1 MiB, which fills it again
    expect(woken).toEqual(['a']);
    budget.give(2 * MiB);
    expect(woken).toEqual(['a', 'c']);
    expect(budget.usedBytes).toBe(MiB);
  });

  it('refuses a limit that is not a positive number of bytes', () => {
    expect(() => new MemoryBudget(0)).toThrow(/positive/);
  });
});
