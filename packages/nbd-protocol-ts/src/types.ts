/** Public data types of the protocol package. Offsets and lengths are JS numbers (exact up to 2^53). */

/** Block size constraints advertised with NBD_INFO_BLOCK_SIZE. */
export interface BlockSizeConstraints {
  minimum: number;
  preferred: number;
  maximum: number;
}

/** What the handshake needs to know about one export. */
export interface ExportDescriptor {
  name: string;
  description: string;
  size: number;
  /** Transmission flags; HAS_FLAGS is added by the encoder. */
  transmissionFlags: number;
  blockSize: BlockSizeConstraints;
  /** Meta contexts this export offers, e.g. ['base:allocation']. */
  metaContexts: readonly string[];
}

/** Where the handshake looks exports up. Consulted on every option, so it may change between connections. */
export interface ExportRegistry {
  list(): readonly ExportDescriptor[];
  /** The empty name means the default export; return undefined when there is none. */
  lookup(name: string): ExportDescriptor | undefined;
}

/** A decoded transmission-phase request. */
export interface Request {
  /** True when the request came with the 32-byte extended header. */
  extended: boolean;
  flags: number;
  type: number;
  /** Opaque 64-bit handle echoed in the reply. */
  cookie: bigint;
  offset: number;
  length: number;
}

/** One base:allocation (or other context) extent for a block status reply. */
export interface StatusDescriptor {
  length: number;
  flags: number;
}

/** Outcome of a finished handshake: everything the transmission phase needs. */
export interface NegotiatedSession {
  export: ExportDescriptor;
  structuredReplies: boolean;
  extendedHeaders: boolean;
  /** Selected meta contexts by the id the server assigned. */
  metaContexts: ReadonlyMap<number, string>;
  /** Bytes received after the last handshake frame: the first requests. */
  leftover: Buffer;
}
