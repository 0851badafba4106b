import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { checkMemoryFit, memoryLimitBytes, SERVER_BASE_BYTES } from '../../../src/cli/memory-fit.js';
import { HELD_BLOCK_BOOKKEEPING_BYTES } from '../../../src/remap/defaults.js';
import { UserError } from '../../../src/cli/user-error.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const limit = { bytes: 16 * GiB, what: "this machine's memory" };

describe('the caches against the RAM there is', () => {
  it('refuses caches that cannot fit, naming the sizes, the limit and the fix (exit 2: a usage error)', () => {
    let err: unknown;
    try {
      checkMemoryFit(16 * GiB, 64 * MiB, 4096, limit);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(
      "--cache 16 GiB and --revisit-cache 64 MiB (plus ~96 MiB for the server and ~384 MiB to keep track of a full cache of 4096-byte blocks) need 17 GiB of RAM, more than this machine's memory (16 GiB): seal takes that memory, and the kernel would kill the server for it",
    );
    expect((err as UserError).fix).toMatch(/give a smaller --cache/);
    // With 4 KiB blocks the bookkeeping is a small part: the block size is not the fix to offer.
    expect((err as UserError).fix).not.toMatch(/--block-size/);
    expect((err as UserError).exitCode).toBe(2);
  });

  it('warns when they take most of it, and is silent when they fit well', () => {
    expect(checkMemoryFit(12 * GiB, 0, 4096, limit)).toMatch(/need 12 GiB of RAM, 77% of this machine's memory \(16 GiB\)/);
    const fullCache = (cache: number): number => cache + SERVER_BASE_BYTES + (cache / 4096) * HELD_BLOCK_BOOKKEEPING_BYTES;
    expect(fullCache(11.5 * GiB)).toBeLessThan(12 * GiB);
    expect(checkMemoryFit(11.5 * GiB, 0, 4096, limit)).toBeUndefined();
    expect(checkMemoryFit(256 * MiB, 64 * MiB, 4096, limit)).toBeUndefined();
  });

  it('counts the memory each held block takes besides its data: with small blocks it decides', () => {
    // 14 GiB of 4 KiB blocks: 336 MiB of bookkeeping, a warning. 13.5 GiB of 512-byte blocks: 2.5 GiB, more than the machine.
    expect(checkMemoryFit(14 * GiB, 0, 4096, limit)).toMatch(/~336 MiB to keep track of a full cache of 4096-byte blocks\) need 14 GiB of RAM, 90%/);
    let err: unknown;
    try {
      checkMemoryFit(13.5 * GiB, 0, 512, limit);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    // 16.1 GiB against 16 GiB: written apart, not as "need 16 GiB … more than … (16 GiB)".
    expect((err as UserError).message).toMatch(/~2\.5 GiB to keep track of a full cache of 512-byte blocks\) need 16\.1 GiB of RAM, more than this machine's memory \(16\.0 GiB\)/);
    expect((err as UserError).fix).toMatch(/or a larger --block-size \(each block held costs ~96 bytes besides its data\)/);
  });

  it('takes the machine, or a smaller cgroup limit', () => {
    const found = memoryLimitBytes();
    expect(found.bytes).toBeGreaterThan(0);
    expect(found.bytes).toBeLessThanOrEqual(totalmem());
  });
});
