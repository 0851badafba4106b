import { Command, CommandFlag, Errno } from 'nbd-protocol-ts';
import { describe, expect, it } from 'vitest';
import type { ExportCapabilities } from '../../../src/server/block-export.js';
import { validateRequest, type ValidationContext } from '../../../src/server/validate-request.js';

const READ_ONLY: ExportCapabilities = {
  readOnly: true, flush: false, fua: false, trim: false, writeZeroes: false, fastZero: false,
  cache: true, blockStatus: true, multiConn: true, rotational: false,
};
const context = (capabilities: ExportCapabilities): ValidationContext => ({
  size: 1 << 20, capabilities, structuredReplies: true, blockStatusContext: true, maxPayload: 1 << 25,
});
const request = (type: number, flags = 0) => ({ extended: false, type, flags, cookie: 1n, offset: 0, length: 4096 });

describe('validateRequest', () => {
  it('answers every write, trim and zero request to a read-only export with EPERM, though it offers no TRIM or WRITE_ZEROES (spec, nbdkit)', () => {
    for (const r of [request(Command.WRITE), request(Command.TRIM), request(Command.WRITE_ZEROES), request(Command.WRITE_ZEROES, CommandFlag.FAST_ZERO)]) {
      expect(validateRequest(r, context(READ_ONLY)), `command ${r.type} flags ${r.flags}`).toMatchObject({ ok: false, errno: Errno.EPERM });
    }
  });

  it('still answers a command a writable export did not offer with EINVAL', () => {
    const writable = { ...READ_ONLY, readOnly: false, flush: true, fua: true };
    expect(validateRequest(request(Command.TRIM), context(writable))).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(validateRequest(request(Command.WRITE_ZEROES), context(writable))).toMatchObject({ ok: false, errno: Errno.EINVAL });
    expect(validateRequest(request(Command.WRITE), context(writable))).toEqual({ ok: true });
  });
});
