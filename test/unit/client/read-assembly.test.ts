import { ProtocolError } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { ReadAssembly } from '../../../src/client/read-assembly.js';

describe('ReadAssembly', () => {
  it('puts data and hole chunks back together in any order', () => {
    const read = new ReadAssembly(1000, 10);
    read.data(1006, Buffer.from([6, 7, 8, 9]));
    read.hole(1002, 4);
    read.data(1000, Buffer.from([0xa, 0xb]));
    expect([...read.finish()]).toEqual([0xa, 0xb, 0, 0, 0, 0, 6, 7, 8, 9]);
  });

  it('hands back a single chunk covering the whole read as it is', () => {
    const data = Buffer.from('whole');
    const read = new ReadAssembly(0, 5);
    read.data(0, data);
    expect(read.finish()).toBe(data);
  });

  it('zeroes a read that is one hole, even in recycled memory', () => {
    const read = new ReadAssembly(4096, 4096);
    read.hole(4096, 4096);
    expect(read.finish().equals(Buffer.alloc(4096))).toBe(true);
  });

  it('refuses success with bytes missing', () => {
    const read = new ReadAssembly(0, 8);
    read.data(0, Buffer.alloc(4, 1));
    expect(() => read.finish()).toThrow(/sent only 4 bytes/);
  });

  it.each([
    ['before the read', (r: ReadAssembly) => r.data(99, Buffer.alloc(2))],
    ['past the read', (r: ReadAssembly) => r.hole(105, 6)],
    ['empty', (r: ReadAssembly) => r.hole(100, 0)],
  ])('refuses a chunk %s', (_, chunk) => {
    const read = new ReadAssembly(100, 10);
    expect(() => chunk(read)).toThrow(ProtocolError);
    expect(() => chunk(read)).toThrow(/outside the read at 100\+10/);
  });

  it('refuses a chunk that overlaps an earlier one, on either side', () => {
    const read = new ReadAssembly(0, 100);
    read.data(40, Buffer.alloc(20));
    expect(() => read.hole(30, 11)).toThrow(/overlaps/);
    expect(() => read.data(59, Buffer.alloc(5))).toThrow(/overlaps/);
    expect(() => read.hole(45, 1)).toThrow(/overlaps/);
    read.hole(30, 10);
    read.data(60, Buffer.alloc(40));
    expect(() => read.data(0, Buffer.alloc(31))).toThrow(/overlaps/);
    read.data(0, Buffer.alloc(30));
    expect(read.finish().length).toBe(100);
  });
});
