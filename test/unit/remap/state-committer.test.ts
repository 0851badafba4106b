import { describe, expect, it } from 'vitest';
import type { BlockDevice } from '../../../src/remap/block-device.js';
import { StateCommitter, type StateCommitterOptions } from '../../../src/remap/state-committer.js';
import type { StateJournal, StateRecord } from '../../../src/remap/state-journal.js';

/** Records the order of device syncs and journal calls; syncs can be held open to force interleavings. */
function rig(durable: boolean, options: StateCommitterOptions = {}) {
  const events: string[] = [];
  let releaseSync: (() => void) | undefined;
  let holdSyncs = false;
  let failSync = false;
  const device: BlockDevice = {
    size: 1 << 20,
    readInto: async () => {},
    write: async () => {},
    sync: async () => {
      events.push('sync-start');
      if (holdSyncs) await new Promise<void>((resolve) => (releaseSync = resolve));
      if (failSync) {
        failSync = false;
        throw new Error('EIO on the device');
      }
      events.push('sync-done');
    },
  };
  let failNext = false;
  let fullNext = false;
  const journal: StateJournal = {
    durable,
    append: (r: StateRecord) => void events.push(`append ${r.type}`),
    commit: async () => {
      events.push('commit');
      if (failNext) {
        failNext = false;
        throw new Error('disk full');
      }
      if (fullNext) {
        fullNext = false;
        // As the file journal reports a group that found no room: it took none of it.
        throw Object.assign(new Error('no space left (retryable)'), { retryable: true });
      }
    },
  };
  return {
    events,
    committer: new StateCommitter(journal, device, options),
    hold: (on: boolean) => (holdSyncs = on),
    release: () => releaseSync?.(),
    failNextCommit: () => (failNext = true),
    fillNextCommit: () => (fullNext = true),
    failNextSync: () => (failSync = true),
  };
}

describe('StateCommitter (group commit and the ordering rules)', () => {
  it('shares one commit among concurrent barriers', async () => {
    const { committer, events } = rig(false);
    const waits: Promise<void>[] = [];
    for (let i = 0; i < 100; i++) {
      committer.append({ type: 'release', start: i, count: 1 });
      waits.push(committer.commitThrough());
    }
    await Promise.all(waits);
    expect(events.filter((e) => e === 'commit').length).toBeLessThanOrEqual(2);
    expect(events.filter((e) => e.startsWith('append')).length).toBe(100);
    expect(committer.committed).toBe(100);
  });

  it('reports a commit that took at least slowCommitMs, with its records, and no faster one', async () => {
    const slow: Array<{ ms: number; records: number }> = [];
    const { committer, hold, release } = rig(true, { slowCommitMs: 40, onSlowCommit: (ms, records) => slow.push({ ms, records }) });
    committer.append({ type: 'release', start: 0, count: 1 });
    await committer.flush();
    expect(slow).toEqual([]);
    // The device sync of the next FLUSH hangs for 60 ms, as a slow disk's would.
    hold(true);
    for (let i = 1; i <= 3; i++) committer.append({ type: 'release', start: i, count: 1 });
    const flushed = committer.flush();
    setTimeout(release, 60);
    await flushed;
    expect(slow).toHaveLength(1);
    expect(slow[0].records).toBe(3);
    expect(slow[0].ms).toBeGreaterThanOrEqual(40);
  });

  it('a barrier without data records does not sync the device; a flush always does', async () => {
    const { committer, events } = rig(true);
    committer.append({ type: 'destroy', start: 0, count: 1 });
    await committer.commitThrough();
    expect(events).toEqual(['append destroy', 'commit']);
    await committer.flush();
    expect(events.slice(2)).toEqual(['sync-start', 'sync-done']);
  });

  it('durable journal: the device is synced before a record that points at data reaches the journal', async () => {
    const { committer, events } = rig(true);
    committer.append({ type: 'spill', dest: 0, count: 1, slot: 9 });
    await committer.commitThrough();
    expect(events).toEqual(['sync-start', 'sync-done', 'append spill', 'commit']);
  });

  it('a flush whose batch points at no data syncs the device and commits the journal at once', async () => {
    const { committer, events, hold, release } = rig(true);
    hold(true);
    committer.append({ type: 'hold', dest: 0, data: Buffer.alloc(4096, 1) });
    committer.append({ type: 'destroy', start: 3, count: 1 });
    const flushed = committer.flush();
    await new Promise((r) => setImmediate(r));
    // The journal commit did not wait for the device sync still held open.
    expect(events).toEqual(['sync-start', 'append hold', 'append destroy', 'commit']);
    hold(false);
    release();
    await flushed;
    expect(events.at(-1)).toBe('sync-done');
    expect(committer.committed).toBe(2);
  });

  it('… but with a record pointing at data in the batch, the device sync comes first', async () => {
    const { committer, events, hold, release } = rig(true);
    hold(true);
    committer.append({ type: 'hold', dest: 0, data: Buffer.alloc(4096, 1) });
    committer.append({ type: 'land', dest: 1, count: 1 });
    const flushed = committer.flush();
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual(['sync-start']);
    hold(false);
    release();
    await flushed;
    expect(events).toEqual(['sync-start', 'sync-done', 'append hold', 'append land', 'commit']);
  });

  it('… and a device sync that fails fails the flush, even when the journal committed', async () => {
    const { committer, failNextSync } = rig(true);
    committer.append({ type: 'hold', dest: 0, data: Buffer.alloc(4096, 1) });
    failNextSync();
    await expect(committer.flush()).rejects.toThrow('EIO on the device');
  });

  it('a background commit syncs the device on its own: a permission barrier meanwhile does not wait for it', async () => {
    const { committer, events, hold, release } = rig(true, { backgroundCommitRecords: 4 });
    hold(true);
    for (let i = 0; i < 4; i++) committer.append({ type: 'spill', dest: i, count: 1, slot: 10 + i });
    await new Promise((r) => setImmediate(r));
    expect(events).toEqual(['sync-start']);
    const destroy = committer.append({ type: 'destroy', start: 20, count: 1 });
    await committer.commitPermissionsThrough(destroy);
    // Committed while the background sync is still held open.
    expect(events).toEqual(['sync-start', 'append destroy', 'commit']);
    hold(false);
    release();
    await committer.whenCommitted(4);
    expect(events.slice(3)).toEqual(['sync-done', 'append spill', 'append spill', 'append spill', 'append spill', 'commit']);
  });

  it('… and that sync does not cover a record appended while it ran: its commit syncs again', async () => {
    const { committer, events, hold, release } = rig(true, { backgroundCommitRecords: 2 });
    hold(true);
    committer.append({ type: 'spill', dest: 0, count: 1, slot: 10 });
    committer.append({ type: 'spill', dest: 1, count: 1, slot: 11 });
    await new Promise((r) => setImmediate(r));
    // Its data was written after the background sync began.
    const land = committer.append({ type: 'land', dest: 2, count: 1 });
    hold(false);
    release();
    await committer.whenCommitted(2);
    expect(events).toEqual(['sync-start', 'sync-done', 'append spill', 'append spill', 'commit']);
    await committer.commitThrough(land);
    expect(events.slice(5)).toEqual(['sync-start', 'sync-done', 'append land', 'commit']);
  });

  it('a record appended while a commit is syncing waits for the next sync', async () => {
    const { committer, events, hold, release } = rig(true);
    hold(true);
    committer.append({ type: 'land', dest: 0, count: 1 });
    const first = committer.commitThrough();
    await new Promise((r) => setImmediate(r));
    // Its data was written after the sync in flight began: that sync does not cover it.
    committer.append({ type: 'land', dest: 1, count: 1 });
    const second = committer.commitThrough();
    hold(false);
    release();
    await Promise.all([first, second]);
    const secondAppend = events.lastIndexOf('append land');
    expect(events.slice(0, 4)).toEqual(['sync-start', 'sync-done', 'append land', 'commit']);
    expect(events.slice(4, secondAppend)).toEqual(['sync-start', 'sync-done']);
  });

  it('a failed commit is final: later barriers fail too', async () => {
    const onFailure: unknown[] = [];
    const { committer, failNextCommit } = rig(false, { onFailure: (err) => onFailure.push(err) });
    failNextCommit();
    committer.append({ type: 'checkpoint' });
    await expect(committer.commitThrough()).rejects.toThrow('disk full');
    expect(onFailure).toHaveLength(1);
    expect(committer.failed).toBe(onFailure[0]);
    committer.append({ type: 'checkpoint' });
    await expect(committer.commitThrough()).rejects.toThrow('disk full');
    await expect(committer.flush()).rejects.toThrow('disk full');
  });
  it('a retryable failure fails the barriers it covered only: the batch is queued again, ahead of later records, and committed next time', async () => {
    const onFailure: Array<[unknown, boolean]> = [];
    const { committer, events, fillNextCommit } = rig(false, { onFailure: (err, final) => onFailure.push([err, final]) });
    committer.append({ type: 'release', start: 1, count: 1 });
    committer.append({ type: 'hold', dest: 2, data: Buffer.alloc(8) });
    fillNextCommit();
    await expect(committer.flush()).rejects.toThrow('no space left');
    expect(committer.failed).toBeUndefined();
    expect(onFailure.map(([, final]) => final)).toEqual([false]);
    expect(committer.lastRetryableFailure).toBe(onFailure[0][0]);
    expect(committer.committed).toBe(0);
    committer.append({ type: 'checkpoint' });
    events.length = 0;
    await committer.flush();
    expect(events.filter((e) => e.startsWith('append'))).toEqual(['append release', 'append hold', 'append checkpoint']);
    expect(committer.committed).toBe(3);
    expect(committer.lastRetryableFailure).toBeUndefined();
  });

  it('… also when the failed batch was a permission commit that overtook pending records: the order by sequence comes back', async () => {
    const { committer, events, fillNextCommit } = rig(true);
    committer.append({ type: 'land', dest: 0, count: 1 });
    const destroy = committer.append({ type: 'destroy', start: 5, count: 1 });
    fillNextCommit();
    await expect(committer.commitPermissionsThrough(destroy)).rejects.toThrow('no space left');
    expect(events).toEqual(['append destroy', 'commit']);
    committer.append({ type: 'release', start: 6, count: 1 });
    events.length = 0;
    await committer.commitThrough();
    expect(events).toEqual(['sync-start', 'sync-done', 'append land', 'append destroy', 'append release', 'commit']);
    expect(committer.committed).toBe(3);
  });

  it('a permission barrier commits destroys ahead of pending spill/land records, without a device sync', async () => {
    const { committer, events } = rig(true);
    committer.append({ type: 'land', dest: 0, count: 1 });
    committer.append({ type: 'zero', dest: 0, count: 1 });
    committer.append({ type: 'release', start: 5, count: 1 });
    const destroy = committer.append({ type: 'destroy', start: 5, count: 1 });
    await committer.commitPermissionsThrough(destroy);
    expect(events).toEqual(['append release', 'append destroy', 'commit']);
    // The land (and the zero behind it) are still pending, in order; a full barrier syncs first.
    expect(committer.committed).toBe(0);
    events.length = 0;
    await committer.commitThrough(destroy);
    expect(events).toEqual(['sync-start', 'sync-done', 'append land', 'append zero', 'commit']);
    expect(committer.committed).toBe(4);
  });

  it('… and commits everything (with the sync) when a record other than spill/land/zero/hold would stay behind', async () => {
    const { committer, events } = rig(true);
    committer.append({ type: 'spill', dest: 0, count: 1, slot: 9 });
    committer.append({ type: 'checkpoint' });
    const destroy = committer.append({ type: 'destroy', start: 5, count: 1 });
    await committer.commitPermissionsThrough(destroy);
    expect(events).toEqual(['sync-start', 'sync-done', 'append spill', 'append checkpoint', 'append destroy', 'commit']);
    expect(committer.committed).toBe(3);
  });

  it('… and needs nothing held back with a journal that is not durable', async () => {
    const { committer, events } = rig(false);
    committer.append({ type: 'land', dest: 0, count: 1 });
    const destroy = committer.append({ type: 'destroy', start: 5, count: 1 });
    await committer.commitPermissionsThrough(destroy);
    expect(events).toEqual(['append land', 'append destroy', 'commit']);
    expect(committer.committed).toBe(2);
  });
});
