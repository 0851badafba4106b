import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../../src/cli/format-status.js';

const base = {
  phase: 'sealed',
  blockSize: 4096,
  diskBlocks: 256,
  destinationBlocks: 128,
  safe: false,
  declaredFree: 0,
  released: 64,
  confirmed: 10,
  atRisk: 0,
  originalsOverwritten: 5,
  heldInRam: 4,
  heldInRamBytes: 16384,
  heldAsZero: 2,
  spilled: 3,
  landed: 1,
  cacheBytes: 16384,
  cacheLimitBytes: 65536,
  revisitCache: { hits: 7, misses: 1, entries: 1, originals: 2, bytes: 8192, limitBytes: 1048576 },
  enospc: 0,
  lastEnospc: null,
  destinationLanded: true,
  sourceClients: 1,
  destinationClients: 2,
  finish: null,
  stateRecords: { appended: 9, committed: 8 },
};

describe('formatStatus', () => {
  it('summarises a healthy migration in a few lines, with sizes in bytes', () => {
    const text = formatStatus(base);
    expect(text).toMatch(/^phase:\s+sealed$/m);
    expect(text).toMatch(/disk 256 blocks \(1\.0 MiB\) → destination 128 blocks \(512 KiB\)/);
    expect(text).toMatch(/held in RAM 4 \(16 KiB, 25% of the 64 KiB cache\), as zeroes 2, spilled 3, landed 1/);
    // Originals are counted in blocks, not in the chunks the captures keep them in.
    expect(text).toMatch(/^revisit:\s+2 original\(s\) kept, 8\.0 KiB of 1\.0 MiB; re-reads served 7, lost 1$/m);
    expect(text).toMatch(/old layout can no longer be restored/);
    expect(text).not.toMatch(/ENOSPC|at risk/);
    expect(text).not.toMatch(/declared free/);
  });

  it('shows a figure an older server does not report as ?, not as 0', () => {
    const { originals: _dropped, ...olderRevisit } = base.revisitCache as Record<string, unknown>;
    const text = formatStatus({ ...base, revisitCache: olderRevisit });
    expect(text).toMatch(/^revisit:\s+\? original\(s\) kept, 8\.0 KiB of 1\.0 MiB; re-reads served 7, lost 1$/m);
  });

  it('before sealing, shows what TRIMs of source declared free (released only when sealed)', () => {
    const text = formatStatus({ ...base, phase: 'unsealed', declaredFree: 48, released: 0, confirmed: 0 });
    expect(text).toMatch(/^source:\s+declared free 48 \(192 KiB\) by TRIM \(fstrim, blkdiscard\): released when sealed$/m);
    expect(text).not.toMatch(/released 0/);
  });

  it('shows blocks released as holes, and only when there are', () => {
    expect(formatStatus({ ...base, releasedAsHoles: 0 })).not.toMatch(/holes/);
    const text = formatStatus({ ...base, releasedAsHoles: 48 });
    expect(text).toMatch(/^\s+of them holes 48 \(192 KiB\): block status told a client, and they read as zeroes$/m);
    expect(text).not.toMatch(/releasedAsHoles/);
  });

  it('once finished, says the disk holds the new layout, not that nothing has landed', () => {
    // A migration whose data all landed during finish (or an identity map with nothing written) still has destinationLanded false.
    const text = formatStatus({ ...base, phase: 'finished', destinationLanded: false, heldInRam: 0, heldInRamBytes: 0, cacheBytes: 0, heldAsZero: 0, spilled: 0 });
    expect(text).toMatch(/^\s+finished: the disk holds the new layout; destination is a plain view of it$/m);
    expect(text).not.toMatch(/old layout/);
    expect(formatStatus({ ...base, destinationLanded: false })).toMatch(/nothing has landed yet: the disk still holds the old layout/);
  });

  it('shows RAM a commit in flight still takes from the cache', () => {
    expect(formatStatus({ ...base, cacheBytes: 16384 + 8192 })).toMatch(/25% of the 64 KiB cache; 8\.0 KiB more until a commit in flight is done\)/);
  });

  it("shows a checkpoint's note and clients dropped for stalling, and only when there are", () => {
    const plain = formatStatus(base);
    expect(plain).not.toMatch(/note|disconnected/);
    const text = formatStatus({ ...base, checkpointNote: 'rsync done: /home', clientsDroppedStalled: 2 });
    expect(text).toMatch(/^\s+last checkpoint's note: rsync done: \/home$/m);
    expect(text).toMatch(/^clients:\s+source 1, destination 2; 2 disconnected for holding memory others waited for \(--stall-timeout; the log names them\)$/m);
    // Not listed again among the fields the summary does not cover.
    expect(text).not.toMatch(/clients dropped stalled|checkpoint note:/);
  });

  it('says what to do about originals at risk and refused writes', () => {
    const text = formatStatus({ ...base, atRisk: 12, enospc: 3, lastEnospc: 'destination block 99' });
    expect(text).toMatch(/at risk: 12 .*nbd-remapper checkpoint/);
    expect(text).toMatch(/3 destination write\(s\) failed with ENOSPC.*last: destination block 99/);
    expect(text).toMatch(/fix: .*--cache/);
  });

  it('says where the state is and what a crash would lose now', () => {
    const durable = { journal: { path: '/s/disk.remap-state', bytes: 2048, records: 5, lastCommit: '2026-12-01T00:00:00Z' }, heldInRamVolatile: 0, heldInRamDurable: 4, recordsVolatile: 0, originalsAtRisk: 0, hint: null };
    expect(formatStatus({ ...base, durability: durable })).toMatch(/state file:\s+\/s\/disk.remap-state \(2\.0 KiB, 5 record\(s\)[\s\S]*volatile:\s+nothing/);
    const volatile = formatStatus({ ...base, durability: { ...durable, heldInRamVolatile: 3, recordsVolatile: 2, hint: 'run a checkpoint' } });
    expect(volatile).toMatch(/volatile:\s+3 RAM block\(s\) and 2 record\(s\) not yet durable/);
    expect(volatile).toMatch(/hint:\s+run a checkpoint/);
    expect(volatile).toMatch(/\(the next FLUSH makes them so\)/);
    expect(volatile).not.toMatch(/FAILED/);
    expect(volatile).not.toMatch(/WARNING/);
    const hidden = formatStatus({ ...base, durability: { ...durable, journal: { ...durable.journal, pathProblem: 'a file system is mounted over /s, hiding the state file' } } });
    expect(hidden).toMatch(/^WARNING:\s+the state file is not where a restart looks: a file system is mounted over \/s, hiding the state file$/m);
  });

  it('says when state commits fail, why, and what to do; when they have stopped it no longer promises the next FLUSH', () => {
    const failure = { message: 'cannot write the state file /s/disk.remap-state: no space left on the file system that holds it (ENOSPC)', fix: 'free space on the file system of /s (df -h /s)', final: true };
    const durability = { journal: { path: '/s/disk.remap-state', bytes: 2048, records: 5, lastCommit: null }, heldInRamVolatile: 3, heldInRamDurable: 1, recordsVolatile: 2, originalsAtRisk: 0, failure, hint: null };
    const text = formatStatus({ ...base, durability });
    expect(text).toMatch(/^FAILED:\s+cannot write the state file \/s\/disk\.remap-state: no space left .*\(ENOSPC\)$/m);
    expect(text).toMatch(/^\s+fix: free space on the file system of \/s \(df -h \/s\)$/m);
    expect(text).toMatch(/volatile:\s+3 RAM block\(s\) and 2 record\(s\) not yet durable \(and they cannot become durable: state commits have stopped\)/);
    expect(text).not.toMatch(/the next FLUSH makes them so/);

    const retrying = formatStatus({ ...base, durability: { ...durability, failure: { ...failure, final: false } } });
    expect(retrying).toMatch(/^commit failed: cannot write the state file .*\(ENOSPC\) \(the next FLUSH tries again\)$/m);
    expect(retrying).toMatch(/^\s+fix: free space on the file system of \/s/m);
    expect(retrying).toMatch(/not yet durable \(the next FLUSH makes them so\)/);
    expect(retrying).not.toMatch(/FAILED/);
  });

  it('lists fields it has no summary for, so nothing the server reports is hidden', () => {
    const text = formatStatus({ ...base, journal: { path: '/x/state', bytes: 4096 } });
    expect(text).toMatch(/^journal:\n  path: \/x\/state\n  bytes: 4,096$/m);
  });
});
