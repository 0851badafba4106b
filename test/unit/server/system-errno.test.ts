import { closeSync, openSync, writeSync } from 'node:fs';
import { Errno } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import { nbdErrnoOf } from '../../../src/server/system-errno.js';
import { StateWriteError } from '../../../src/state/state-errors.js';

/** The error a real system call gives, so the test sees what Node really throws. */
function failureOf(call: () => void): unknown {
  try {
    call();
  } catch (err) {
    return err;
  }
  throw new Error('the call was expected to fail');
}

describe('the NBD errno of a failed request', () => {
  it('is ENOSPC for a full file system (a real write to /dev/full), and for EDQUOT and EFBIG as the spec says', () => {
    const fd = openSync('/dev/full', 'w');
    try {
      expect(nbdErrnoOf(failureOf(() => writeSync(fd, Buffer.alloc(512))))).toBe(Errno.ENOSPC);
    } finally {
      closeSync(fd);
    }
    for (const code of ['EDQUOT', 'EFBIG']) expect(nbdErrnoOf(Object.assign(new Error(code), { code, syscall: 'write' }))).toBe(Errno.ENOSPC);
  });

  it('is EPERM for a read-only file system, ENOMEM for ENOMEM, and EIO for any other system error', () => {
    expect(nbdErrnoOf(Object.assign(new Error('EROFS'), { code: 'EROFS', syscall: 'write' }))).toBe(Errno.EPERM);
    expect(nbdErrnoOf(Object.assign(new Error('ENOMEM'), { code: 'ENOMEM', syscall: 'read' }))).toBe(Errno.ENOMEM);
    expect(nbdErrnoOf(failureOf(() => writeSync(-1 >>> 1, Buffer.alloc(1))))).toBe(Errno.EIO);
  });

  it('is EIO for errors that only carry an errno name, like a state file that can no longer be written (final: retrying will not help)', () => {
    expect(nbdErrnoOf(new StateWriteError('/s/state', 'ENOSPC', 'cannot write the state file /s/state: no space left', 'free space, then restart'))).toBe(Errno.EIO);
    // …but ENOSPC while its file system is full and the next commit may succeed.
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    expect(nbdErrnoOf(new StateWriteError('/s/state', 'ENOSPC', 'cannot write the state file /s/state: no space left', 'free space', { retryable: true, cause: full }))).toBe(Errno.ENOSPC);
    expect(nbdErrnoOf(new Error('something else'))).toBe(Errno.EIO);
    expect(nbdErrnoOf(undefined)).toBe(Errno.EIO);
  });
});
