import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/logger.js';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import type { StateJournal, StateRecord } from '../../../src/remap/state-journal.js';
import { StateWriteError } from '../../../src/state/state-errors.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const B = 4096;
const W = { fua: false };

/** A durable journal whose commits fail with `broken` while it is set (retryable or final, as the file journal's errors are). */
class BreakingJournal implements StateJournal {
  readonly durable = true;
  broken: Error | undefined;
  committed: StateRecord[] = [];
  private batch: StateRecord[] = [];

  append(record: StateRecord): void {
    this.batch.push(record);
  }

  async commit(): Promise<void> {
    const records = this.batch;
    this.batch = [];
    await Promise.resolve();
    if (this.broken !== undefined) throw this.broken;
    this.committed.push(...records);
  }

  /** The data of the last committed `hold` of each block. */
  lastHolds(): Map<number, Buffer> {
    const out = new Map<number, Buffer>();
    for (const r of this.committed) if (r.type === 'hold') out.set(r.dest, Buffer.from(r.data));
    return out;
  }
}

const path = '/var/lib/nbd-remapper/disk.remap-state';
const noRoom = (): StateWriteError =>
  new StateWriteError(path, 'ENOSPC', `cannot write the state file ${path}: no space left`, 'free space; the next FLUSH tries again', {
    retryable: true,
    cause: Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' }),
  });

function recordingLog(): Logger & { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  const ignore = (): void => undefined;
  const log: Logger & { errors: string[]; warnings: string[] } = {
    errors,
    warnings,
    debug: ignore,
    info: ignore,
    warn: (m) => void warnings.push(m),
    error: (m) => void errors.push(m),
    child: () => log,
  };
  return log;
}

describe('when the state can no longer be committed', () => {
  it('FLUSH fails, the log and status say why and what to do, and the blocks that FLUSH tried to log count as volatile again', async () => {
    const device = new MemoryDevice(8 * B, B);
    patternBytes(8 * B, 3).copy(device.bytes);
    const journal = new BreakingJournal();
    const log = recordingLog();
    const engine = createRemapper({ device, cacheBytes: 4 * B, revisitCacheBytes: 0, journal, log });
    await engine.seal();
    // Homes unread: both blocks stay in RAM.
    await engine.destination.write(0, Buffer.alloc(2 * B, 0xa5), W);
    expect(engine.status().durability.heldInRamVolatile).toBe(2);

    journal.broken = new StateWriteError(path, 'ENOSPC', `cannot write the state file ${path}: no space left`, 'free space (df -h /var/lib/nbd-remapper), then restart');
    await expect(engine.destination.flush()).rejects.toBe(journal.broken);

    const durability = engine.status().durability;
    expect(durability.failure).toEqual({ message: journal.broken.message, fix: 'free space (df -h /var/lib/nbd-remapper), then restart', final: true });
    // Not in the journal after all: a crash now would lose them, and status must not say otherwise.
    expect(durability.heldInRamVolatile).toBe(2);
    expect(durability.heldInRamDurable).toBe(0);
    expect(log.errors).toHaveLength(1);
    expect(log.errors[0]).toMatch(/state commits have stopped/);
    expect(log.errors[0]).toContain(journal.broken.message);
    expect(log.errors[0]).toContain('fix: free space');

    // Final: a later FLUSH fails the same way, and the failure is logged once.
    journal.broken = undefined;
    await expect(engine.destination.flush()).rejects.toThrow(/no space left/);
    expect(log.errors).toHaveLength(1);
    // What the destination serves is unchanged.
    const read = Buffer.alloc(2 * B);
    await engine.destination.readInto(read, 0);
    expect(read.equals(Buffer.alloc(2 * B, 0xa5))).toBe(true);
  });

  it('a full file system fails the FLUSH but loses nothing: writes that need the commit fail instead of waiting, and once there is room the next FLUSH logs it all', async () => {
    const device = new MemoryDevice(8 * B, B);
    patternBytes(8 * B, 3).copy(device.bytes);
    const journal = new BreakingJournal();
    const log = recordingLog();
    const cache = 2 * B;
    const engine = createRemapper({ device, cacheBytes: cache, revisitCacheBytes: 0, journal, log });
    await engine.seal();
    // Homes unread and nothing released: RAM is the only place for these two.
    await engine.destination.write(0, Buffer.concat([Buffer.alloc(B, 0xa0), Buffer.alloc(B, 0xa1)]), W);

    journal.broken = noRoom();
    await expect(engine.destination.flush()).rejects.toBe(journal.broken);
    let durability = engine.status().durability;
    expect(durability.failure).toEqual({ message: journal.broken.message, fix: 'free space; the next FLUSH tries again', final: false });
    expect(durability.recordsVolatile).toBeGreaterThanOrEqual(2);
    expect(log.errors).toEqual([]);
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/a state commit failed; FLUSH fails until one succeeds/);

    // Overwriting block 0 needs a second buffer (the first is the queued hold's): with RAM full it needs that
    // commit, which it asks for and which fails again: the write fails rather than wait for nobody.
    await expect(engine.destination.write(0, Buffer.alloc(B, 0xb0), W)).rejects.toBe(journal.broken);
    expect(engine.status().cacheBytes).toBeLessThanOrEqual(cache);

    // Room again: the same write goes through, and a FLUSH makes everything durable.
    journal.broken = undefined;
    await engine.destination.write(0, Buffer.alloc(B, 0xb0), W);
    await engine.destination.flush();
    durability = engine.status().durability;
    expect(durability.failure).toBeNull();
    // One warning per streak of failures, not one per attempt.
    expect(log.warnings).toHaveLength(1);
    expect(durability.recordsVolatile).toBe(0);
    expect(durability.heldInRamVolatile).toBe(0);
    const holds = journal.lastHolds();
    expect(holds.get(0)?.equals(Buffer.alloc(B, 0xb0))).toBe(true);
    expect(holds.get(1)?.equals(Buffer.alloc(B, 0xa1))).toBe(true);
    expect(engine.status().cacheBytes).toBeLessThanOrEqual(cache);
    const read = Buffer.alloc(2 * B);
    await engine.destination.readInto(read, 0);
    expect(read.equals(Buffer.concat([Buffer.alloc(B, 0xb0), Buffer.alloc(B, 0xa1)]))).toBe(true);
  });

  it('a write whose permission commit failed leaves its original allowed to be overwritten only once that permission is durable (G1, G5)', async () => {
    const device = new MemoryDevice(8 * B, B);
    const original = patternBytes(8 * B, 3);
    original.copy(device.bytes);
    const journal = new BreakingJournal();
    const engine = createRemapper({ device, cacheBytes: B, revisitCacheBytes: 0, journal });
    await engine.seal();
    // Home 0 read and confirmed: a destination write to block 0 lands there at once, after its `destroy` is committed.
    await engine.source.readInto(Buffer.alloc(B), 0);
    await engine.checkpoint();
    const unpermitted: number[] = [];
    device.writeGate = (offset) => {
      const p = offset / B;
      const permitted = journal.committed.some((r) => r.type === 'destroy' && r.start <= p && p < r.start + r.count);
      if (!permitted) unpermitted.push(p);
    };

    journal.broken = noRoom();
    await expect(engine.destination.write(0, Buffer.alloc(B, 0xd0), W)).rejects.toBe(journal.broken);
    expect(device.bytes.subarray(0, B).equals(original.subarray(0, B))).toBe(true);
    // Twice: the second attempt relies on the first one's record, and must give that reliance back when it fails too.
    await expect(engine.destination.write(0, Buffer.alloc(B, 0xd0), W)).rejects.toBe(journal.broken);
    expect(device.bytes.subarray(0, B).equals(original.subarray(0, B))).toBe(true);
    // Nothing was written, so the source still reads the original (from the disk: there is no revisit cache).
    const source = Buffer.alloc(B);
    await engine.source.readInto(source, 0);
    expect(source.equals(original.subarray(0, B))).toBe(true);

    // Room again: the same write lands, and only after its permission is in the journal.
    journal.broken = undefined;
    await engine.destination.write(0, Buffer.alloc(B, 0xd1), W);
    expect(unpermitted).toEqual([]);
    expect(device.bytes.subarray(0, B).equals(Buffer.alloc(B, 0xd1))).toBe(true);
  });
});

describe('a slow state commit', () => {
  it('is logged with what it risks and the fix, once per slow commit', async () => {
    const journal = new (class extends BreakingJournal {
      delayMs = 0;
      override async commit(): Promise<void> {
        await new Promise((resolve) => setTimeout(resolve, this.delayMs));
        return super.commit();
      }
    })();
    const log = recordingLog();
    const device = new MemoryDevice(16 * B, B);
    const engine = createRemapper({ device, cacheBytes: 8 * B, revisitCacheBytes: 0, journal, log, slowCommitMs: 30 });
    await engine.seal();
    await engine.destination.write(0, patternBytes(2 * B, 1), W);
    await engine.destination.flush();
    expect(log.warnings).toEqual([]);
    journal.delayMs = 60;
    await engine.destination.write(2 * B, patternBytes(B, 2), W);
    await engine.destination.flush();
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]).toMatch(/a state commit took \d+\.\d s \(\d+ record\(s\)\), and so did the FLUSH or writes waiting for it: the kernel client fails a request that waits past its timeout \(nbd-client -t\)/);
    expect(log.warnings[0]).toMatch(/Put --state on a faster disk, or give a smaller --cache/);
  });
});
