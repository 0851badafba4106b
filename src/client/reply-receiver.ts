import {
  ProtocolError,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
  Sizes,
  decodeChunkHeader,
  decodeChunkPayload,
  decodeSimpleReply,
  type ChunkHeader,
  type ChunkPayload,
} from 'nbd-protocol-ts';

/** Memory a reply's payload is received into, and what to do once it is full. */
export interface Landing {
  readonly into: Buffer;
  done(): void;
}

/**
 * What the replies mean: the receiver only frames them. Any method may throw
 * (a ProtocolError for a reply that cannot be right); the receiver is then
 * unusable, and the connection should be dropped.
 */
export interface ReplyHandler {
  /** A simple reply; a Landing when data follows it (a successful READ without structured replies). */
  simpleReply(cookie: bigint, errno: number): Landing | undefined;
  /** A chunk header, before its payload: throws when no payload of that length can be right, so none is received. */
  chunkHeader(header: ChunkHeader): void;
  /** Where an OFFSET_DATA chunk's data goes; `done()` runs once all of it is there. */
  dataChunk(header: ChunkHeader, offset: number, length: number): Landing;
  /** Any other chunk, once its payload is in. */
  chunk(header: ChunkHeader, payload: ChunkPayload): void;
}

const EMPTY = Buffer.alloc(0);
const MAGIC = 4;
const SIMPLE = Sizes.SIMPLE_REPLY;
const CHUNK = Sizes.STRUCTURED_REPLY_HEADER;
/** An OFFSET_DATA chunk's header is followed by the u64 offset of its data. */
const DATA_HEADER = CHUNK + 8;

/**
 * Frames the replies of the transmission phase as the bytes arrive, choosing
 * where each recv lands: a payload bigger than `directMinimum` is received
 * straight into the memory the handler gives for it (for a READ, the result
 * buffer at the chunk's place), so the bulk of a read is never copied.
 * Headers and small frames are received into `scratch`, many per recv, and
 * what is needed from it is copied out before the next recv reuses it.
 *
 * Nothing piles up here: at most one frame's header and one bounded payload
 * are held, so a server that floods replies cannot fill memory and reading
 * never needs pausing.
 */
export class ReplyReceiver {
  /** The header of the frame being received: a copy, since scratch is overwritten by the next recv. */
  private readonly header = Buffer.alloc(DATA_HEADER);
  private have = 0;
  private need = MAGIC;
  private stage: 'magic' | 'simple' | 'chunk' | 'data-offset' = 'magic';
  private chunkHeader: ChunkHeader | undefined;
  private landing: Landing | undefined;
  private filled = 0;
  private issued: Buffer;

  constructor(
    private readonly handler: ReplyHandler,
    private readonly scratch: Buffer,
    /** Payload still to come below this is cheaper to copy out of scratch (with whatever follows it) than to recv alone. */
    private readonly directMinimum: number,
  ) {
    if (scratch.length === 0) throw new RangeError('ReplyReceiver needs a non-empty scratch buffer');
    this.issued = scratch;
  }

  /** Where the next recv should land. Never empty; whatever lands there must be reported to received() before buffer() is asked again. */
  buffer(): Buffer {
    const landing = this.landing;
    this.issued = landing && landing.into.length - this.filled >= this.directMinimum ? landing.into.subarray(this.filled) : this.scratch;
    return this.issued;
  }

  /** `bytes` arrived at the start of the buffer buffer() last gave. Throws what the bytes or the handler throw. */
  received(bytes: number): void {
    if (this.issued !== this.scratch) {
      this.filled += bytes;
      if (this.landing && this.filled === this.landing.into.length) this.landed(this.landing);
      return;
    }
    let at = 0;
    while (at < bytes) {
      const landing = this.landing;
      if (landing) {
        const take = Math.min(bytes - at, landing.into.length - this.filled);
        this.scratch.copy(landing.into, this.filled, at, at + take);
        at += take;
        this.filled += take;
        if (this.filled === landing.into.length) this.landed(landing);
      } else {
        const take = Math.min(bytes - at, this.need - this.have);
        this.scratch.copy(this.header, this.have, at, at + take);
        at += take;
        this.have += take;
        if (this.have === this.need) this.headerArrived();
      }
    }
  }

  private headerArrived(): void {
    switch (this.stage) {
      case 'magic': {
        const magic = this.header.readUInt32BE(0);
        if (magic === SIMPLE_REPLY_MAGIC) this.expect('simple', SIMPLE);
        else if (magic === STRUCTURED_REPLY_MAGIC) this.expect('chunk', CHUNK);
        else throw new ProtocolError(`bad reply magic 0x${magic.toString(16).padStart(8, '0')}`);
        return;
      }
      case 'simple': {
        const { cookie, errno } = decodeSimpleReply(this.header);
        this.nextFrame();
        const landing = this.handler.simpleReply(cookie, errno);
        if (landing) this.land(landing);
        return;
      }
      case 'chunk': {
        const header = decodeChunkHeader(this.header);
        this.handler.chunkHeader(header);
        if (header.type === ReplyType.OFFSET_DATA) {
          if (header.length < 9) throw new ProtocolError(`OFFSET_DATA payload of ${header.length} bytes (minimum 9)`);
          this.chunkHeader = header;
          this.expect('data-offset', DATA_HEADER);
          return;
        }
        this.nextFrame();
        // Not OFFSET_DATA, so small (chunkHeader() bounds it) and possibly kept by the handler: a buffer of its own.
        const payload = header.length === 0 ? EMPTY : Buffer.allocUnsafe(header.length);
        this.land({ into: payload, done: () => this.handler.chunk(header, decodeChunkPayload(header.type, payload)) });
        return;
      }
      case 'data-offset': {
        const header = this.chunkHeader as ChunkHeader;
        // Offsets past 2^53 lose precision but stay far outside any read, which the handler refuses.
        const offset = Number(this.header.readBigUInt64BE(CHUNK));
        this.nextFrame();
        this.land(this.handler.dataChunk(header, offset, header.length - 8));
        return;
      }
    }
  }

  private expect(stage: 'simple' | 'chunk' | 'data-offset', bytes: number): void {
    this.stage = stage;
    this.need = bytes;
  }

  private nextFrame(): void {
    this.stage = 'magic';
    this.have = 0;
    this.need = MAGIC;
    this.chunkHeader = undefined;
  }

  private land(landing: Landing): void {
    if (landing.into.length === 0) {
      landing.done();
      return;
    }
    this.landing = landing;
    this.filled = 0;
  }

  private landed(landing: Landing): void {
    this.landing = undefined;
    this.filled = 0;
    landing.done();
  }
}
