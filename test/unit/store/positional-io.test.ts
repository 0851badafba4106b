import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DiskNoProgressError } from '../../../src/store/disk-errors.js';
import { readFully, readFullySync, writeFully, writevFully, type PositionalIo, type PositionalIoSync } from '../../../src/store/positional-io.js';

/** A pread over `file` that moves at most `limits[i]` bytes on its i-th call, like a kernel returning short counts. */
function shortReader(file: Buffer, limits: number[]): { read: PositionalIoSync; calls: () => number } {
  let calls = 0;
  const read: PositionalIoSync = (buffer, bufferOffset, length, position) => {
    const limit = limits[calls % limits.length];
    calls++;
    if (position >= file.length) return 0;
    const n = Math.min(length, limit, file.length - position);
    file.copy(buffer, bufferOffset, position, position + n);
    return n;
  };
  return { read, calls: () => calls };
}

function expectedRead(file: Buffer, position: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  if (position < file.length) file.copy(out, 0, position, Math.min(file.length, position + length));
  return out;
}

const scenario = fc.record({
  file: fc.uint8Array({ minLength: 0, maxLength: 3000 }).map((a) => Buffer.from(a)),
  position: fc.nat(3500),
  length: fc.nat(2000),
  limits: fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }),
});

describe('readFully', () => {
  it('keeps reading after short reads and zero-fills past end of file', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async ({ file, position, length, limits }) => {
        const { read } = shortReader(file, limits);
        const asyncRead: PositionalIo = async (...args) => read(...args);
        // Pre-filled with garbage so that a missing zero-fill shows.
        const buffer = Buffer.alloc(length, 0xa5);
        await readFully(asyncRead, buffer, position);
        expect(buffer.equals(expectedRead(file, position, length))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('needs one call per short read, not one per byte', async () => {
    const file = Buffer.alloc(1000, 7);
    const { read, calls } = shortReader(file, [300]);
    await readFully(async (...args) => read(...args), Buffer.alloc(1000), 0);
    expect(calls()).toBe(4);
  });
});

describe('readFullySync', () => {
  it('behaves like readFully', () => {
    fc.assert(
      fc.property(scenario, ({ file, position, length, limits }) => {
        const { read } = shortReader(file, limits);
        const buffer = Buffer.alloc(length, 0x5a);
        readFullySync(read, buffer, position);
        expect(buffer.equals(expectedRead(file, position, length))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe('writeFully', () => {
  it('keeps writing after short writes until every byte is at its place', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 0, maxLength: 3000 }),
        fc.nat(1000),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 6 }),
        async (bytes, position, limits) => {
          const data = Buffer.from(bytes);
          const target = Buffer.alloc(position + data.length + 10, 0xee);
          let calls = 0;
          const write: PositionalIo = async (buffer, bufferOffset, length, at) => {
            const n = Math.min(length, limits[calls++ % limits.length]);
            buffer.copy(target, at, bufferOffset, bufferOffset + n);
            return n;
          };
          await writeFully(write, data, position);
          const expected = Buffer.alloc(target.length, 0xee);
          data.copy(expected, position);
          expect(target.equals(expected)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('fails with EIO instead of spinning when a write makes no progress', async () => {
    let calls = 0;
    const stuck: PositionalIo = async () => {
      calls++;
      return calls === 1 ? 10 : 0;
    };
    const failure = writeFully(stuck, Buffer.alloc(100), 4096);
    await expect(failure).rejects.toBeInstanceOf(DiskNoProgressError);
    await expect(failure).rejects.toMatchObject({ code: 'EIO', message: expect.stringContaining('offset 4106') });
    expect(calls).toBe(2);
  });
});

describe('writevFully', () => {
  it('writes buffers back to back, resuming after short writes, even inside a buffer', async () => {
    const disk = Buffer.alloc(64);
    const calls: number[] = [];
    const writev = async (buffers: readonly Buffer[], position: number): Promise<number> => {
      calls.push(buffers.length);
      const all = Buffer.concat(buffers);
      const n = Math.min(all.length, 5); // at most 5 bytes per call
      all.copy(disk, position, 0, n);
      return n;
    };
    const parts = [Buffer.from('abc'), Buffer.alloc(0), Buffer.from('defgh'), Buffer.from('ijklmnop')];
    await writevFully(writev, parts, 10);
    expect(disk.subarray(10, 26).toString()).toBe('abcdefghijklmnop');
    expect(calls.length).toBe(4);
  });

  it('fails instead of looping when a call makes no progress', async () => {
    await expect(writevFully(async () => 0, [Buffer.from('x')], 0)).rejects.toThrow(/no progress/);
  });
});
