import { describe, expect, it } from 'vitest';
import type { Logger } from '../../../src/log/logger.js';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import type { StateJournal, StateRecord } from '../../../src/remap/state-journal.js';
import { StateWriteError } from '../../../src/state/state-errors.js';
import { MemoryDevice, patternBytes } from './helpers/memory-device.js';

const B = 4096;
const W = { fua: false };

/** A durable journal whose commits fail, once `broken` is set, with the error the file journal gives for a full file system. */
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
}

function recordingLog(): Logger & { errors: string[] } {
  const errors: string[] = [];
  const ignore = (): void => undefined;
  const log: Logger & { errors: string[] } = { errors, debug: ignore, info: ignore, warn: ignore, error: (m) => void errors.push(m), child: () => log };
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

    const path = '/var/lib/nbd-remapper/disk.remap-state';
    journal.broken = new StateWriteError(path, 'ENOSPC', `cannot write the state file ${path}: no space left`, 'free space (df -h /var/lib/nbd-remapper), then restart');
    await expect(engine.destination.flush()).rejects.toBe(journal.broken);

    const durability = engine.status().durability;
    expect(durability.failure).toEqual({ message: journal.broken.message, fix: 'free space (df -h /var/lib/nbd-remapper), then restart' });
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
});
