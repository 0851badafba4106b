import { totalmem } from 'node:os';
import { describe, expect, it } from 'vitest';
import { checkMemoryFit, memoryLimitBytes, SERVER_BASE_BYTES } from '../../../src/cli/memory-fit.js';
import { UserError } from '../../../src/cli/user-error.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const limit = { bytes: 16 * GiB, what: "this machine's memory" };

describe('the caches against the RAM there is', () => {
  it('refuses caches that cannot fit, naming the sizes, the limit and the fix (exit 2: a usage error)', () => {
    let err: unknown;
    try {
      checkMemoryFit(16 * GiB, 64 * MiB, limit);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toBe(
      "--cache 16 GiB and --revisit-cache 64 MiB (plus ~96 MiB for the server) need 16 GiB of RAM, more than this machine's memory (16 GiB): seal takes that memory, and the kernel would kill the server for it",
    );
    expect((err as UserError).fix).toMatch(/give a smaller --cache/);
    expect((err as UserError).exitCode).toBe(2);
  });

  it('warns when they take most of it, and is silent when they fit well', () => {
    expect(checkMemoryFit(13 * GiB, 0, limit)).toMatch(/need 13 GiB of RAM, 82% of this machine's memory \(16 GiB\)/);
    expect(checkMemoryFit(12 * GiB - SERVER_BASE_BYTES, 0, limit)).toBeUndefined();
    expect(checkMemoryFit(256 * MiB, 64 * MiB, limit)).toBeUndefined();
  });

  it('takes the machine, or a smaller cgroup limit', () => {
    const found = memoryLimitBytes();
    expect(found.bytes).toBeGreaterThan(0);
    expect(found.bytes).toBeLessThanOrEqual(totalmem());
  });
});
