import net from 'node:net';

/**
 * A deliberately low-level NBD client for hostile-input tests: it writes
 * whatever bytes a test asks for and parses replies by hand, independently of
 * the protocol package, so the tests are an oracle for it rather than a mirror.
 */
export class RawNbdClient {
  /**
   * What has arrived and not been read, as it came: joined only when a read
   * takes it. Joining on every chunk copied the whole backlog each time
   * (quadratic: a 32 MiB reply in 64 KiB chunks copied 8 GiB, each copy into
   * fresh memory), which on a VM with costly page faults slowed this client
   * to ~10 MB/s and made it, not the server, time out.
   */
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private waiter: (() => void) | undefined;
  private ended = false;
  readonly closed: Promise<void>;
  /** The server ended its side (FIN). With `halfOpen`, the client's side stays open until close(). */
  readonly serverEnded: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    this.serverEnded = new Promise((resolve) => socket.once('end', resolve));
    socket.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
      this.waiter?.();
    });
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        this.waiter?.();
        resolve();
      }),
    );
    socket.on('error', () => undefined);
  }

  /** `halfOpen`: a client that does not close its side when the server ends the connection (a hostile one). */
  static connect(target: { path: string } | { host: string; port: number }, options: { halfOpen?: boolean } = {}): Promise<RawNbdClient> {
    return new Promise((resolve, reject) => {
      const allowHalfOpen = options.halfOpen ?? false;
      const socket = 'path' in target ? net.connect({ path: target.path, allowHalfOpen }) : net.connect({ port: target.port, host: target.host, allowHalfOpen });
      socket.once('connect', () => resolve(new RawNbdClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Connected, greeted, and in the transmission phase of `exportName` (simple replies). */
  static async attach(target: { path: string } | { host: string; port: number }, exportName: string): Promise<RawNbdClient> {
    const c = await RawNbdClient.connect(target);
    await c.greet();
    await c.go(exportName);
    return c;
  }

  get isClosed(): boolean {
    return this.ended;
  }

  /** Exactly n bytes; rejects if the server closes first or nothing comes within the limit. */
  async read(n: number, timeoutMs = 10_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.bufferedBytes < n) {
      if (this.ended) throw new Error(`connection closed after ${this.bufferedBytes} of ${n} bytes`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} bytes`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.bufferedBytes);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.bufferedBytes = rest.length;
    return Buffer.from(out);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  /** Reads the 18-byte greeting and answers with client flags FIXED_NEWSTYLE|NO_ZEROES. */
  async greet(): Promise<{ handshakeFlags: number }> {
    const greeting = await this.read(18);
    if (greeting.toString('latin1', 0, 8) !== 'NBDMAGIC' || greeting.toString('latin1', 8, 16) !== 'IHAVEOPT') {
      throw new Error(`bad greeting ${greeting.toString('hex')}`);
    }
    this.write(u32(3));
    return { handshakeFlags: greeting.readUInt16BE(16) };
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0)): void {
    this.write(Buffer.concat([Buffer.from('IHAVEOPT', 'latin1'), u32(option), u32(data.length), data]));
  }

  async readOptionReply(): Promise<{ option: number; type: number; data: Buffer }> {
    const header = await this.read(20);
    if (header.readBigUInt64BE(0) !== 0x3e889045565a9n) throw new Error(`bad option reply magic ${header.toString('hex')}`);
    const length = header.readUInt32BE(16);
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: await this.read(length) };
  }

  /** NBD_OPT_GO for `name` with no info requests; returns the export size and flags from NBD_INFO_EXPORT. */
  async go(name: string): Promise<{ size: number; flags: number }> {
    const nameBytes = Buffer.from(name);
    this.sendOption(7, Buffer.concat([u32(nameBytes.length), nameBytes, u16(0)]));
    let info: { size: number; flags: number } | undefined;
    for (;;) {
      const reply = await this.readOptionReply();
      if (reply.type === 3 && reply.data.readUInt16BE(0) === 0) {
        info = { size: Number(reply.data.readBigUInt64BE(2)), flags: reply.data.readUInt16BE(10) };
      } else if (reply.type === 1) {
        if (!info) throw new Error('ACK without NBD_INFO_EXPORT');
        return info;
      } else if (reply.type >= 0x80000000) {
        throw new Error(`GO failed with reply type 0x${reply.type.toString(16)}: ${reply.data.toString()}`);
      }
    }
  }

  sendRequest(r: { type: number; flags?: number; cookie: bigint; offset: number; length: number; magic?: number }, payload?: Buffer): void {
    const header = Buffer.alloc(28);
    header.writeUInt32BE(r.magic ?? 0x25609513, 0);
    header.writeUInt16BE(r.flags ?? 0, 4);
    header.writeUInt16BE(r.type, 6);
    header.writeBigUInt64BE(r.cookie, 8);
    header.writeBigUInt64BE(BigInt(r.offset), 16);
    header.writeUInt32BE(r.length, 24);
    this.write(payload ? Buffer.concat([header, payload]) : header);
  }

  /** A simple reply (no structured replies negotiated); `dataLength` bytes follow a successful read. */
  async readSimpleReply(dataLength = 0): Promise<{ error: number; cookie: bigint; data: Buffer }> {
    const header = await this.read(16);
    if (header.readUInt32BE(0) !== 0x67446698) throw new Error(`bad reply magic ${header.toString('hex')}`);
    const error = header.readUInt32BE(4);
    return { error, cookie: header.readBigUInt64BE(8), data: error === 0 ? await this.read(dataLength) : Buffer.alloc(0) };
  }
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
