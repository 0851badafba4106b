import { describe, expect, it, vi } from 'vitest';

const MiB = 2 ** 20;
const B = 4096;

/**
 * An allocation that fails cannot be provoked for real here (with overcommit
 * the OOM killer comes first, and would take the test machine's memory with
 * it), so the allocator of reserved-memory.ts is replaced: it fails once a
 * budget is used up, as `Buffer.allocUnsafeSlow` does ("Array buffer
 * allocation failed").
 */
const allocator = vi.hoisted(() => ({ budget: Number.POSITIVE_INFINITY, taken: 0 }));

vi.mock('../../../src/remap/reserved-memory.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../../src/remap/reserved-memory.js')>();
  return {
    ...real,
    touchedBuffer: (bytes: number): Buffer => {
      if (allocator.taken + bytes > allocator.budget) throw new RangeError('Array buffer allocation failed');
      allocator.taken += bytes;
      return real.touchedBuffer(bytes);
    },
  };
});

const { createRemapper } = await import('../../../src/remap/create-remapper.js');
const { ControlRefusal } = await import('../../../src/control/migration-control.js');
const { MemoryDevice, patternBytes } = await import('./helpers/memory-device.js');

describe('seal when the caches cannot have their memory', () => {
  it('is refused with the sizes and the fix, leaves the source unsealed and writable, and a second seal takes only the rest', async () => {
    allocator.budget = 24 * MiB;
    allocator.taken = 0;
    const device = new MemoryDevice(4 * MiB, B);
    const engine = createRemapper({ device, cacheBytes: 32 * MiB, revisitCacheBytes: 16 * MiB });

    const refusal = await engine.seal().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(ControlRefusal);
    expect((refusal as Error).message).toMatch(/could not take the RAM of the caches \(--cache 32 MiB, --revisit-cache 16 MiB\): Array buffer allocation failed/);
    expect((refusal as InstanceType<typeof ControlRefusal>).fix).toMatch(/smaller --cache or --revisit-cache/);
    expect(engine.phase).toBe('unsealed');

    // Still the unsealed passthrough: source takes writes, destination refuses them.
    const data = patternBytes(64 * 1024, 3);
    await engine.source.write(0, data, { fua: false });
    const back = Buffer.alloc(data.length);
    await engine.source.readInto(back, 0);
    expect(back.equals(data)).toBe(true);
    await expect(engine.destination.write(0, data, { fua: false })).rejects.toThrow(/seal/);

    // Memory comes back (another process exited): seal again, taking only what the first attempt did not.
    const takenBefore = allocator.taken;
    allocator.budget = Number.POSITIVE_INFINITY;
    await engine.seal();
    expect(engine.phase).toBe('sealed');
    expect(takenBefore).toBeGreaterThanOrEqual(20 * MiB);
    expect(allocator.taken).toBe(48 * MiB);
    await engine.destination.write(0, data, { fua: false });
    await engine.destination.readInto(back, 0);
    expect(back.equals(data)).toBe(true);
  });
});
