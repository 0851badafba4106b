import { describe, expect, it } from 'vitest';
import { DEFAULT_IO_PATH_POLICY, IoPathChooser } from '../../../src/store/io-path-chooser.js';

const policy = { maxSyncBytes: 1024, slowSyncNs: 1000, slowSyncNsPerByte: 1, coolDownRequests: 3 };

describe('IoPathChooser', () => {
  it('reads synchronously up to maxSyncBytes, through the thread pool above', () => {
    const chooser = new IoPathChooser(policy);
    expect(chooser.useSync(1024)).toBe(true);
    expect(chooser.useSync(1025)).toBe(false);
  });

  it('a slow sync read sends the next coolDownRequests requests to the thread pool, then tries sync again', () => {
    const chooser = new IoPathChooser(policy);
    chooser.recordSync(5000, 100);
    expect([1, 2, 3].map(() => chooser.useSync(100))).toEqual([false, false, false]);
    expect(chooser.useSync(100)).toBe(true);
  });

  it('allows larger reads proportionally more time before calling them slow', () => {
    const chooser = new IoPathChooser(policy);
    chooser.recordSync(1900, 1000); // within 1000 ns + 1 ns/byte
    expect(chooser.useSync(1000)).toBe(true);
    chooser.recordSync(1900, 100); // a small read that slow is a miss
    expect(chooser.useSync(100)).toBe(false);
  });

  it('by default serves page-cached reads of nbdcopy-sized requests (256 KiB) synchronously', () => {
    expect(new IoPathChooser(DEFAULT_IO_PATH_POLICY).useSync(256 * 1024)).toBe(true);
  });
});
