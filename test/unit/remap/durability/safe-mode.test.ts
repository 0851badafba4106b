import { Errno, NbdError } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { createRemapper } from '../../../../src/remap/create-remapper.js';
import { RemapMap } from '../../../../src/remap/map.js';
import { MemoryStateJournal, type StateRecord } from '../../../../src/remap/state-journal.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { readExport } from '../../../../src/server/block-export.js';

/** --safe (issue 4 item 5): an unconfirmed original is never destroyed; the write fails ENOSPC and status says to checkpoint. */
describe('--safe', () => {
  it('refuses with ENOSPC rather than destroy an unconfirmed original, and a checkpoint unblocks it', async () => {
    const B = 512;
    const device = new MemoryDevice(8 * B, B);
    const journal = new MemoryStateJournal({ keepRecords: true, durable: true });
    // Destination block d lives at disk block 7-d: the homes of 0…3 are 7…4.
    const map = RemapMap.fromExtents(Array.from({ length: 8 }, (_, d) => ({ destOffset: d * B, length: B, diskOffset: (7 - d) * B })), 8 * B, B);
    const e = createRemapper({ device, map, cacheBytes: B, revisitCacheBytes: 0, journal, safe: true });
    await e.seal();
    await readExport(e.source, 0, 4 * B); // releases 0…3, unconfirmed
    await e.destination.write(0, Buffer.alloc(B, 1), { fua: false }); // RAM
    const refused = await e.destination.write(B, Buffer.alloc(B, 2), { fua: false }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(NbdError);
    expect((refused as NbdError).errno).toBe(Errno.ENOSPC);
    expect((refused as NbdError).message).toMatch(/checkpoint/);
    const status = e.status();
    expect(status.atRisk).toBe(0);
    expect(status.durability.hint).toMatch(/checkpoint/);
    expect(journal.records.some((r: StateRecord) => r.type === 'destroy')).toBe(false);

    await e.checkpoint();
    expect(e.status().durability.hint).toBeNull();
    await e.destination.write(B, Buffer.alloc(B, 2), { fua: false });
    expect(journal.records.some((r: StateRecord) => r.type === 'destroy')).toBe(true);
    expect(e.status().atRisk).toBe(0);
  });
});
