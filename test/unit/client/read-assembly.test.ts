import { ProtocolError } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { ReadAssembly } from '../../../src/client/read-assembly.js';

/** What the client does with an OFFSET_DATA chunk: receive its data where the assembly says. */
function data(read: ReadAssembly, offset: number, bytes: Buffer): void {
  bytes.copy(read.receive(offset, bytes.length));
}

describe('ReadAssembly', () => {
  it('puts data and hole chunks back together in any order', () => {
    const read = new ReadAssembly(1000, 10, undefined);
    data(read, 1006, Buffer.from([6, 7, 8, 9]));
    read.hole(1002, 4);
    data(read, 1000, Buffer.from([0xa, 0xb]));
    expect([...read.finish()]).toEqual([0xa, 0xb, 0, 0, 0, 0, 6, 7, 8, 9]);
  });

  it('receives data in place in the caller\'s buffer, and hands that buffer back', () => {
    const into = Buffer.alloc(10, 0xee);
    const read = new ReadAssembly(50, 10, into);
    const target = read.receive(54, 6);
    expect(target.buffer).toBe(into.buffer);
    expect(target.byteOffset - into.byteOffset).toBe(4);
    expect(target.length).toBe(6);
    target.fill(7);
    read.hole(50, 4);
    expect(read.finish()).toBe(into);
    expect([...into]).toEqual([0, 0, 0, 0, 7, 7, 7, 7, 7, 7]);
    expect(() => new ReadAssembly(0, 8, Buffer.alloc(7))).toThrow(RangeError);
  });

  it('zeroes a read that is one hole, even in recycled memory', () => {
    const read = new ReadAssembly(4096, 4096, Buffer.alloc(4096, 0xee));
    read.hole(4096, 4096);
    expect(read.finish().equals(Buffer.alloc(4096))).toBe(true);
  });

  it('refuses success with bytes missing', () => {
    const read = new ReadAssembly(0, 8, undefined);
    data(read, 0, Buffer.alloc(4, 1));
    expect(() => read.finish()).toThrow(/sent only 4 bytes/);
  });

  it.each([
    ['before the read', (r: ReadAssembly) => r.receive(99, 2)],
    ['past the read', (r: ReadAssembly) => r.hole(105, 6)],
    ['empty', (r: ReadAssembly) => r.hole(100, 0)],
  ])('refuses a chunk %s', (_, chunk) => {
    const read = new ReadAssembly(100, 10, undefined);
    expect(() => chunk(read)).toThrow(ProtocolError);
    expect(() => chunk(read)).toThrow(/outside the read at 100\+10/);
  });

  it('refuses a chunk that overlaps an earlier one, on either side', () => {
    const read = new ReadAssembly(0, 100, undefined);
    data(read, 40, Buffer.alloc(20));
    expect(() => read.hole(30, 11)).toThrow(/overlaps/);
    expect(() => read.receive(59, 5)).toThrow(/overlaps/);
    expect(() => read.hole(45, 1)).toThrow(/overlaps/);
    read.hole(30, 10);
    data(read, 60, Buffer.alloc(40));
    expect(() => read.receive(0, 31)).toThrow(/overlaps/);
    data(read, 0, Buffer.alloc(30));
    expect(read.finish().length).toBe(100);
  });
});
