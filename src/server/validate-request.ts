import { Command, CommandFlag, Errno, type ErrnoValue, type Request } from 'nbd-protocol-ts';
import type { ExportCapabilities } from './block-export.js';

/** What a connection negotiated, as far as request validation cares. */
export interface ValidationContext {
  size: number;
  capabilities: ExportCapabilities;
  structuredReplies: boolean;
  /** At least one meta context was selected with SET_META_CONTEXT. */
  blockStatusContext: boolean;
  /** Largest READ/WRITE payload accepted (the advertised maximum block size). */
  maxPayload: number;
}

export type Verdict = { ok: true } | { ok: false; errno: ErrnoValue; reason: string };

const OK: Verdict = { ok: true };
const fail = (errno: ErrnoValue, reason: string): Verdict => ({ ok: false, errno, reason });

const KNOWN_FLAGS =
  CommandFlag.FUA | CommandFlag.NO_HOLE | CommandFlag.DF | CommandFlag.REQ_ONE | CommandFlag.FAST_ZERO;

/** Flags other than FUA that each command accepts (FUA is valid on every command once negotiated). */
const FLAGS_BY_COMMAND: Record<number, number> = {
  [Command.READ]: CommandFlag.DF,
  [Command.WRITE]: 0,
  [Command.FLUSH]: 0,
  [Command.TRIM]: 0,
  [Command.CACHE]: 0,
  [Command.WRITE_ZEROES]: CommandFlag.NO_HOLE | CommandFlag.FAST_ZERO,
  [Command.BLOCK_STATUS]: CommandFlag.REQ_ONE,
};

const WRITES = new Set<number>([Command.WRITE, Command.WRITE_ZEROES, Command.TRIM]);

/**
 * Checks a request against the spec's rules (doc/proto.md, "Request types" and
 * "Error values") before any export code runs, so exports only ever see requests
 * that are in range and were negotiated. NBD_CMD_DISC is handled by the caller.
 */
export function validateRequest(request: Request, context: ValidationContext): Verdict {
  const { type, flags, offset, length } = request;
  const caps = context.capabilities;

  const allowed = FLAGS_BY_COMMAND[type];
  if (allowed === undefined) return fail(Errno.EINVAL, `unknown command ${type}`);
  if ((flags & ~KNOWN_FLAGS) !== 0) return fail(Errno.EINVAL, `unknown command flags 0x${flags.toString(16)}`);
  // Before the checks of what was negotiated: a read-only export offers no TRIM or WRITE_ZEROES, and the spec
  // asks for EPERM on any write, trim or zero request to it (as nbdkit answers), not "not negotiated".
  if (WRITES.has(type) && caps.readOnly) return fail(Errno.EPERM, 'export is read-only');
  if (flags & CommandFlag.FUA && !caps.fua) return fail(Errno.EINVAL, 'FUA flag was not negotiated');
  if ((flags & ~CommandFlag.FUA & ~allowed) !== 0) {
    return fail(Errno.EINVAL, `flags 0x${flags.toString(16)} are not valid for this command`);
  }
  if (flags & CommandFlag.DF && !context.structuredReplies) {
    return fail(Errno.EINVAL, 'DF flag needs structured replies');
  }
  if (flags & CommandFlag.FAST_ZERO && !caps.fastZero) return fail(Errno.EINVAL, 'FAST_ZERO was not negotiated');

  switch (type) {
    case Command.FLUSH:
      if (!caps.flush) return fail(Errno.EINVAL, 'FLUSH was not negotiated');
      return OK;
    case Command.TRIM:
      if (!caps.trim) return fail(Errno.EINVAL, 'TRIM was not negotiated');
      break;
    case Command.WRITE_ZEROES:
      if (!caps.writeZeroes) return fail(Errno.EINVAL, 'WRITE_ZEROES was not negotiated');
      break;
    case Command.CACHE:
      if (!caps.cache) return fail(Errno.EINVAL, 'CACHE was not negotiated');
      break;
    case Command.BLOCK_STATUS:
      if (!context.structuredReplies || !context.blockStatusContext) {
        return fail(Errno.EINVAL, 'BLOCK_STATUS needs structured replies and a meta context selected with SET_META_CONTEXT');
      }
      if (length === 0) return fail(Errno.EINVAL, 'BLOCK_STATUS of zero length');
      break;
    case Command.READ:
    case Command.WRITE:
      if (length > context.maxPayload) {
        return fail(Errno.EINVAL, `length ${length} exceeds the maximum block size ${context.maxPayload}`);
      }
      break;
  }

  if (offset > context.size || length > context.size - offset) {
    const where = `range ${offset}+${length} is past the end of the export (${context.size} bytes)`;
    return type === Command.WRITE || type === Command.WRITE_ZEROES
      ? fail(Errno.ENOSPC, where)
      : fail(Errno.EINVAL, where);
  }
  return OK;
}
