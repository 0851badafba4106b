import { describe, expect, it } from 'vitest';
import { reserveInTurns, touchedBuffer } from '../../../src/remap/reserved-memory.js';

const MiB = 1024 * 1024;

describe('reserveInTurns', () => {
  it('takes pieces until there are none left, and lets the event loop run between slices', async () => {
    let pieces = 64;
    let turnsSeen = 0;
    let reserving = true;
    const tick = (): void => {
      if (!reserving) return;
      turnsSeen++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const taken = await reserveInTurns(() => (pieces-- > 0 ? MiB : 0));
    reserving = false;
    expect(taken).toBe(64 * MiB);
    // 64 MiB in slices of a few MiB: other work ran in between, not only before or after.
    expect(turnsSeen).toBeGreaterThanOrEqual(8);
  });

  it('returns 0 when there is nothing to take', async () => {
    expect(await reserveInTurns(() => 0)).toBe(0);
  });
});

describe('touchedBuffer', () => {
  it('is a buffer of the size asked for, of its own memory', () => {
    const a = touchedBuffer(MiB + 5);
    expect(a.length).toBe(MiB + 5);
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(MiB + 5);
  });
});
