/**
 * Unsigned LEB128 varints for block numbers up to 2^53: small numbers (run
 * lengths, gaps) take one or two bytes, so a snapshot of a fragmented bitmap
 * stays compact. Arithmetic, not bit operations: block numbers exceed 2^32.
 */
export class ByteWriter {
  private buffer: Buffer;
  private used = 0;

  constructor(initial = 64) {
    this.buffer = Buffer.allocUnsafe(initial);
  }

  get length(): number {
    return this.used;
  }

  uint(n: number): this {
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`cannot encode ${n}: not a non-negative safe integer`);
    this.room(8);
    while (n >= 128) {
      this.buffer[this.used++] = (n % 128) | 128;
      n = Math.floor(n / 128);
    }
    this.buffer[this.used++] = n;
    return this;
  }

  bytes(data: Buffer): this {
    this.room(data.length);
    data.copy(this.buffer, this.used);
    this.used += data.length;
    return this;
  }

  /** Length-prefixed UTF-8. */
  text(s: string): this {
    const data = Buffer.from(s, 'utf8');
    return this.uint(data.length).bytes(data);
  }

  finish(): Buffer {
    return this.buffer.subarray(0, this.used);
  }

  private room(n: number): void {
    if (this.used + n <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.used + n));
    this.buffer.copy(grown, 0, 0, this.used);
    this.buffer = grown;
  }
}

/** Thrown on a payload that does not parse; the caller turns it into a corruption error with the file offset. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
}

export class ByteReader {
  private at = 0;

  constructor(private readonly data: Buffer) {}

  get done(): boolean {
    return this.at >= this.data.length;
  }

  get offset(): number {
    return this.at;
  }

  uint(): number {
    let n = 0;
    let scale = 1;
    for (;;) {
      if (this.at >= this.data.length) throw new DecodeError('varint runs past the end of the payload');
      const byte = this.data[this.at++];
      n += (byte & 127) * scale;
      if (!Number.isSafeInteger(n)) throw new DecodeError('varint exceeds 2^53');
      if (byte < 128) return n;
      scale *= 128;
    }
  }

  bytes(length: number): Buffer {
    if (this.at + length > this.data.length) throw new DecodeError(`payload too short for ${length} bytes`);
    const out = this.data.subarray(this.at, this.at + length);
    this.at += length;
    return out;
  }

  rest(): Buffer {
    return this.bytes(this.data.length - this.at);
  }

  text(): string {
    return this.bytes(this.uint()).toString('utf8');
  }

  end(): void {
    if (!this.done) throw new DecodeError(`${this.data.length - this.at} unexpected trailing byte(s)`);
  }
}
