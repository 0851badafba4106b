import { OptionPayloadError } from './protocol-errors.js';
import { encodeName, stringDefect } from './wire-strings.js';
import { checkU16 } from './wire-numbers.js';

/**
 * Payloads of the options whose data has structure. Decoders validate every
 * length against the payload and throw OptionPayloadError, which the
 * handshake answers with NBD_REP_ERR_INVALID.
 */

/** NBD_OPT_INFO / NBD_OPT_GO data. */
export interface InfoRequest {
  name: string;
  /** NBD_INFO_* types the client asks for, in its order (unknown ones included; the server ignores them). */
  infoTypes: number[];
}

/** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data. */
export interface MetaContextRequest {
  exportName: string;
  queries: string[];
}

/** A cursor that turns every overrun into an OptionPayloadError naming the field. */
class PayloadReader {
  private position = 0;
  constructor(private readonly payload: Buffer) {}

  get remaining(): number {
    return this.payload.length - this.position;
  }

  u16(what: string): number {
    this.need(2, what);
    const value = this.payload.readUInt16BE(this.position);
    this.position += 2;
    return value;
  }

  u32(what: string): number {
    this.need(4, what);
    const value = this.payload.readUInt32BE(this.position);
    this.position += 4;
    return value;
  }

  string(length: number, what: string): string {
    this.need(length, what);
    const bytes = this.payload.subarray(this.position, this.position + length);
    const defect = stringDefect(bytes);
    if (defect) throw new OptionPayloadError(`${what} ${defect}`);
    this.position += length;
    return bytes.toString('utf8');
  }

  end(what: string): void {
    if (this.remaining !== 0) throw new OptionPayloadError(`${this.remaining} unexpected bytes after ${what}`);
  }

  private need(bytes: number, what: string): void {
    if (bytes > this.remaining) {
      throw new OptionPayloadError(`${what} needs ${bytes} bytes but only ${this.remaining} remain in the option data`);
    }
  }
}

/** u32 name length, name, u16 n, n × u16 information types. */
export function decodeInfoRequest(payload: Buffer): InfoRequest {
  const reader = new PayloadReader(payload);
  const name = reader.string(reader.u32('export name length'), 'export name');
  const count = reader.u16('number of information requests');
  if (count * 2 !== reader.remaining) {
    throw new OptionPayloadError(`${count} information requests need ${count * 2} bytes, the option has ${reader.remaining}`);
  }
  const infoTypes: number[] = [];
  for (let i = 0; i < count; i++) infoTypes.push(reader.u16('information request'));
  return { name, infoTypes };
}

export function encodeInfoRequest(name: string, infoTypes: readonly number[] = []): Buffer {
  const nameBytes = encodeName(name, 'export name');
  const buf = Buffer.alloc(4 + nameBytes.length + 2 + 2 * infoTypes.length);
  buf.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(buf, 4);
  let at = buf.writeUInt16BE(checkU16(infoTypes.length, 'number of information requests'), 4 + nameBytes.length);
  for (const type of infoTypes) at = buf.writeUInt16BE(checkU16(type, 'information type'), at);
  return buf;
}

/** u32 export name length, name, u32 n queries, each u32 length + query. */
export function decodeMetaContextRequest(payload: Buffer): MetaContextRequest {
  const reader = new PayloadReader(payload);
  const exportName = reader.string(reader.u32('export name length'), 'export name');
  const count = reader.u32('number of queries');
  // Each query takes at least its 4-byte length, so this also bounds the loop below by the payload size.
  if (count > reader.remaining / 4) {
    throw new OptionPayloadError(`${count} queries cannot fit in the ${reader.remaining} remaining bytes`);
  }
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(reader.string(reader.u32(`length of query ${i + 1}`), `query ${i + 1}`));
  reader.end('the last query');
  return { exportName, queries };
}

export function encodeMetaContextRequest(exportName: string, queries: readonly string[] = []): Buffer {
  const parts: Buffer[] = [lengthPrefixed(encodeName(exportName, 'export name'))];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(queries.length, 0);
  parts.push(count);
  for (const query of queries) parts.push(lengthPrefixed(encodeName(query, 'meta context query')));
  return Buffer.concat(parts);
}

function lengthPrefixed(bytes: Buffer): Buffer {
  const buf = Buffer.alloc(4 + bytes.length);
  buf.writeUInt32BE(bytes.length, 0);
  bytes.copy(buf, 4);
  return buf;
}
