/**
 * Every constant of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md).
 * Names follow the spec with the NBD_ prefix and the group prefix dropped.
 */

/** "NBDMAGIC": first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT": second magic of the newstyle greeting, and the magic of every option request. */
export const IHAVEOPT_MAGIC = 0x49484156454f5054n;
/** Oldstyle greeting magic (we never speak oldstyle; kept for completeness of the vocabulary). */
export const OLDSTYLE_MAGIC = 0x00420281861253n;
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const EXTENDED_REQUEST_MAGIC = 0x21e41c71;
export const SIMPLE_REPLY_MAGIC = 0x67446698;
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;
export const EXTENDED_REPLY_MAGIC = 0x6e8a278c;

/** Handshake flags (16 bits, server → client in the greeting). */
export const HandshakeFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Client flags (32 bits, client → server after the greeting). */
export const ClientFlag = {
  FIXED_NEWSTYLE: 1 << 0,
  NO_ZEROES: 1 << 1,
} as const;

/** Transmission flags (16 bits, per export). */
export const TransmissionFlag = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
  BLOCK_STAT_PAYLOAD: 1 << 12,
} as const;

/** Option types (client → server during haggling). */
export const Option = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
  EXTENDED_HEADERS: 11,
} as const;
export type OptionCode = number;

const REP_ERR = 0x80000000;
/** Option reply types (server → client during haggling). */
export const OptionReply = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: REP_ERR + 1,
  ERR_POLICY: REP_ERR + 2,
  ERR_INVALID: REP_ERR + 3,
  ERR_PLATFORM: REP_ERR + 4,
  ERR_TLS_REQD: REP_ERR + 5,
  ERR_UNKNOWN: REP_ERR + 6,
  ERR_SHUTDOWN: REP_ERR + 7,
  ERR_BLOCK_SIZE_REQD: REP_ERR + 8,
  ERR_TOO_BIG: REP_ERR + 9,
  ERR_EXT_HEADER_REQD: REP_ERR + 10,
} as const;

export function isOptionReplyError(type: number): boolean {
  return type >= REP_ERR;
}

/** Information types inside NBD_REP_INFO and requested by NBD_OPT_INFO/GO. */
export const Info = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Command types (transmission phase). */
export const Command = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

/** Command flags (16 bits). */
export const CommandFlag = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
  PAYLOAD_LEN: 1 << 5,
} as const;

/** Structured reply chunk flags. */
export const ReplyFlag = {
  DONE: 1 << 0,
} as const;

/** Structured reply chunk types. */
export const ReplyType = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  BLOCK_STATUS_EXT: 6,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;

export function isReplyTypeError(type: number): boolean {
  return (type & (1 << 15)) !== 0;
}

/** Flags of a base:allocation block status descriptor. */
export const AllocationFlag = {
  HOLE: 1 << 0,
  ZERO: 1 << 1,
} as const;

/** The meta context every server that supports block status offers. */
export const BASE_ALLOCATION = 'base:allocation';

/** Error values on the wire (the spec's Error values section). */
export const Errno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
export type ErrnoValue = (typeof Errno)[keyof typeof Errno];

/** Sizes fixed by the spec. */
export const Sizes = {
  /** Export names and descriptions are at most this many bytes. */
  MAX_STRING: 4096,
  COMPACT_REQUEST: 28,
  EXTENDED_REQUEST: 32,
  SIMPLE_REPLY: 16,
  STRUCTURED_REPLY_HEADER: 20,
  OPTION_REQUEST_HEADER: 16,
  OPTION_REPLY_HEADER: 20,
  /** Zero padding after the NBD_OPT_EXPORT_NAME reply unless NO_ZEROES was negotiated. */
  EXPORT_NAME_ZEROES: 124,
} as const;

/** Reverse lookup for logs: the spec's name of a command, option or errno. */
export function nameOf(table: Readonly<Record<string, number>>, value: number): string {
  for (const [name, v] of Object.entries(table)) if (v === value) return name;
  return `unknown(${value})`;
}
