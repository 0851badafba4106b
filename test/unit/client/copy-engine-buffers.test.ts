import { describe, expect, it } from 'vitest';
import { copyByPlan, type CopyDestination, type CopySource } from '../../../src/client/copy/copy-engine.js';

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe('copyByPlan reuses its chunk buffers', () => {
  it.each([1, 2, 5])('uses at most maxInFlight buffers (%i), and none again before its write is answered', async (maxInFlight) => {
    const size = 40 * 4096 + 123;
    const disk = Buffer.alloc(size);
    for (let i = 0; i < size; i++) disk[i] = (i * 7 + 1) % 253;
    const out = Buffer.alloc(size);
    const buffers = new Set<ArrayBuffer>();
    const source: CopySource = {
      // Fills at once: a buffer handed out again too early is overwritten before its write lands.
      preadInto: async (into, offset) => {
        buffers.add(into.buffer as ArrayBuffer);
        disk.copy(into, 0, offset, offset + into.length);
      },
    };
    const destination: CopyDestination = {
      canWriteZeroes: false,
      canFlush: false,
      // Lands the data only when the write is answered, several turns later (as a socket may still be sending it).
      pwrite: async (offset, data) => {
        await turns(3 + (offset % 5));
        data.copy(out, offset);
      },
      zero: async () => undefined,
      flush: async () => undefined,
    };
    const summary = await copyByPlan(source, destination, { moves: [{ from: 0, to: 0, length: size }] }, { requestSize: 4096, maxInFlight });
    expect(out.equals(disk)).toBe(true);
    expect(summary.chunks).toBe(41);
    expect(buffers.size).toBeLessThanOrEqual(maxInFlight);
  });
});
