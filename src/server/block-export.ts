import type { BlockSizeConstraints, StatusDescriptor } from 'nbd-protocol-ts';

/**
 * What the server needs from an export. The server knows nothing of disks or
 * remapping: it validates requests against `size` and the capabilities, then
 * calls these methods. Methods fail by throwing NbdError (the errno the client
 * sees); anything else thrown is reported as EIO and logged.
 *
 * Like an nbdkit filter stack, remapping views implement this same interface
 * over the disk.
 */
export interface BlockExport {
  readonly name: string;
  readonly description: string;
  /** Size in bytes, fixed for the lifetime of a connection. */
  readonly size: number;
  readonly blockSize: BlockSizeConstraints;
  /** Capabilities as of now; a connection captures them at handshake. */
  capabilities(): ExportCapabilities;

  /**
   * Fill `buffer` with the bytes at `offset` (the range is already validated to
   * be inside the export). The buffer is the server's: it reuses buffers (see
   * BufferPool), so an export must not keep it.
   */
  readInto(buffer: Buffer, offset: number): Promise<void>;
  /**
   * Where the bytes of [offset, offset+length) lie in a file, so the server
   * may send them from the page cache without reading them into a buffer
   * (sendfile), or undefined when they must be read with readInto. The socket
   * then holds the file's pages until the client reads them: an export
   * offers this only where nothing but a client's own writes can change those
   * bytes — a client that writes what it has not finished reading has asked
   * for either version.
   */
  fileSpan?(offset: number, length: number): FileSpan | undefined;
  /**
   * A READ reply of [offset, offset+length) that went, in part or whole, from
   * file spans has been handed to the socket entirely (what a copied reply's
   * readInto has done by the time it returns). The client may not have read
   * it yet: the spans' whenTaken say when it has.
   */
  fileReplySent?(offset: number, length: number): void;
  /** `data` is the server's too: it is reused once the returned promise settles, so an export copies what it keeps. */
  write(offset: number, data: Buffer, options: WriteOptions): Promise<void>;
  /**
   * Make the range read as zeroes. `mayTrim` (no NBD_CMD_FLAG_NO_HOLE) allows
   * deallocation; `fast` (NBD_CMD_FLAG_FAST_ZERO) means: fail with ENOTSUP at
   * once rather than fall back to writing zeroes slowly.
   */
  writeZeroes(offset: number, length: number, options: ZeroOptions): Promise<void>;
  /** Advisory discard; afterwards the range may read as anything. */
  trim(offset: number, length: number, options: WriteOptions): Promise<void>;
  /** Make every write completed so far durable. */
  flush(): Promise<void>;
  /** Prefetch hint. */
  cache(offset: number, length: number): Promise<void>;
  /** base:allocation of [offset, offset+length): descriptors covering at least the first byte. */
  blockStatus(offset: number, length: number): Promise<StatusDescriptor[]>;
  /** Meta contexts of the export's own besides base:allocation, offered in this order after it. */
  readonly metaContexts?: readonly MetaContextSource[];

  /** A client finished the handshake on this export / went away. Views use this (e.g. finish refuses while source has clients). */
  attach?(clientId: string): void;
  detach?(clientId: string): void;
}

/**
 * A meta context an export answers BLOCK_STATUS for (spec, "Metadata
 * querying"): `name` is `namespace:leaf` outside the reserved `base:`, and
 * `status` answers like blockStatus, with the flags the context defines.
 */
export interface MetaContextSource {
  readonly name: string;
  status(offset: number, length: number): Promise<StatusDescriptor[]>;
}

/** Bytes of an export as they lie in a file: the descriptor stays open while the export serves. */
export interface FileSpan {
  fd: number;
  position: number;
  /**
   * For an export whose bytes something besides its clients will change
   * later (the source, once sealed, under landing destination writes): the
   * server calls it exactly once, when the client has read whatever it was
   * sent of these bytes, or can no longer (its side closed), or at once when
   * nothing was sent from the file. Spans with it are used only on sockets
   * that can tell (unix); elsewhere the reply is copied.
   */
  whenTaken?: () => void;
}

export interface ExportCapabilities {
  readOnly: boolean;
  flush: boolean;
  fua: boolean;
  trim: boolean;
  writeZeroes: boolean;
  fastZero: boolean;
  cache: boolean;
  blockStatus: boolean;
  /** True only when writes through one connection are visible to reads of every other and a flush on one covers all. */
  multiConn: boolean;
  rotational: boolean;
}

export interface WriteOptions {
  fua: boolean;
}

export interface ZeroOptions extends WriteOptions {
  mayTrim: boolean;
  fast: boolean;
}

/** Reads `length` bytes into a new buffer: for callers that keep what they read (tests, tools). */
export async function readExport(exp: Pick<BlockExport, 'readInto'>, offset: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  if (length > 0) await exp.readInto(buffer, offset);
  return buffer;
}
