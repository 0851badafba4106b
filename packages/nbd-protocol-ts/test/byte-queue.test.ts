import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../src/index.js';
import { hex } from './hex.js';

describe('ByteQueue', () => {
  it('returns a subarray of the chunk, not a copy, for a take inside one chunk', () => {
    const chunk = hex('0102030405');
    const q = new ByteQueue();
    q.push(chunk);
    const taken = q.take(3);
    expect(taken).toEqual(hex('010203'));
    expect(taken.buffer).toBe(chunk.buffer);
    expect(taken.byteOffset).toBe(chunk.byteOffset);
    expect(q.length).toBe(2);
  });

  it('joins exactly the needed pieces for a take across chunks', () => {
    const q = new ByteQueue();
    q.push(hex('0102'));
    q.push(hex('0304'));
    q.push(hex('0506'));
    expect(q.take(5)).toEqual(hex('0102030405'));
    expect(q.length).toBe(1);
    expect(q.take(1)).toEqual(hex('06'));
    expect(q.length).toBe(0);
  });

  it('peeks without consuming and skips without reading', () => {
    const q = new ByteQueue();
    q.push(hex('01'));
    q.push(hex('020304'));
    expect(q.peek(2)).toEqual(hex('0102'));
    expect(q.length).toBe(4);
    q.skip(3);
    expect(q.takeAll()).toEqual(hex('04'));
  });

  it('ignores empty chunks and refuses to read more than it holds', () => {
    const q = new ByteQueue();
    q.push(Buffer.alloc(0));
    q.push(hex('01'));
    expect(() => q.take(2)).toThrow(RangeError);
    expect(() => q.skip(-1)).toThrow(RangeError);
    expect(q.take(0)).toEqual(Buffer.alloc(0));
    expect(q.length).toBe(1);
  });

  it('behaves like one flat buffer under any chunking and any reads (property)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), bytes: fc.uint8Array({ maxLength: 40 }) }),
      fc.record({ kind: fc.constantFrom('take' as const, 'peek' as const, 'skip' as const), n: fc.nat(60) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const q = new ByteQueue();
        let model = Buffer.alloc(0);
        for (const o of ops) {
          if (o.kind === 'push') {
            q.push(Buffer.from(o.bytes));
            model = Buffer.concat([model, Buffer.from(o.bytes)]);
            continue;
          }
          const n = Math.min(o.n, model.length);
          if (o.kind === 'peek') expect(q.peek(n)).toEqual(model.subarray(0, n));
          if (o.kind === 'take') expect(q.take(n)).toEqual(model.subarray(0, n));
          if (o.kind === 'skip') q.skip(n);
          if (o.kind !== 'peek') model = model.subarray(n);
          expect(q.length).toBe(model.length);
        }
      }),
      { numRuns: 200 },
    );
  });
});
