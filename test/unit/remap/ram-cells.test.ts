import { describe, expect, it } from 'vitest';
import { RamCells } from '../../../src/remap/ram-cells.js';

const B = 4096;
const MiB = 1024 * 1024;

describe('RamCells', () => {
  it('carves block cells from slabs: consecutive cells are consecutive memory, views share it', () => {
    const cells = new RamCells(B, 8 * MiB);
    const a = cells.take(B);
    const b = cells.take(B);
    const va = cells.view(a);
    const vb = cells.view(b);
    expect(va.length).toBe(B);
    expect(va.buffer).toBe(vb.buffer);
    expect(vb.byteOffset).toBe(va.byteOffset + B);
    va.fill(7);
    vb.fill(9);
    // A fresh view of a cell sees what was written through another; neighbours do not overlap.
    expect(cells.view(a)[B - 1]).toBe(7);
    expect(cells.view(b)[0]).toBe(9);
    // A slab holds 1 MiB: the 257th cell starts a new one.
    const rest = Array.from({ length: 254 }, () => cells.take(B));
    const next = cells.take(B);
    expect(cells.view(rest[rest.length - 1]).buffer).toBe(va.buffer);
    expect(cells.view(next).buffer).not.toBe(va.buffer);
  });

  it('reuses given-back cells first in, first out, before carving more', () => {
    const cells = new RamCells(B, 8 * MiB);
    const taken = Array.from({ length: 4 }, () => cells.take(B));
    const unused = cells.unusedBytes;
    cells.giveBack(taken[2]);
    cells.giveBack(taken[0]);
    expect(cells.unusedBytes).toBe(unused + 2 * B);
    expect(cells.take(B)).toBe(taken[2]);
    expect(cells.take(B)).toBe(taken[0]);
    expect(cells.unusedBytes).toBe(unused);
  });

  it('keeps a short cell (the last block of a destination whose size is not a multiple of the block) apart', () => {
    const cells = new RamCells(B, 8 * MiB);
    const short = cells.take(1000);
    expect(cells.lengthOf(short)).toBe(1000);
    expect(cells.view(short).length).toBe(1000);
    const full = cells.take(B);
    expect(cells.lengthOf(full)).toBe(B);
    cells.giveBack(short);
    // A short cell is freed, never handed out as a block cell.
    expect(cells.take(B)).not.toBe(short);
  });

  it('reserves slabs up to the cache, less what is in use, and carves them before allocating', async () => {
    const cells = new RamCells(B, 3 * MiB + 8 * B);
    const inUse = 2 * B;
    expect(await cells.reserve(() => inUse)).toBe(3 * MiB + 6 * B);
    expect(cells.unusedBytes).toBe(3 * MiB + 6 * B);
    expect(await cells.reserve(() => inUse)).toBe(0);
    cells.take(B);
    expect(cells.unusedBytes).toBe(3 * MiB + 5 * B);
  });

  it('after release takes nothing back and reserves nothing', async () => {
    const cells = new RamCells(B, 4 * MiB);
    const a = cells.take(B);
    cells.release();
    cells.giveBack(a);
    expect(cells.unusedBytes).toBe(0);
    expect(await cells.reserve(() => 0)).toBe(0);
  });
});
