import { ClientFlag, HandshakeFlag, IHAVEOPT_MAGIC, NBD_MAGIC } from './constants.js';
import { ProtocolError } from './protocol-errors.js';
import { requireBytes } from './wire-numbers.js';

export const GREETING_LENGTH = 18;
export const CLIENT_FLAGS_LENGTH = 4;

/** Client flags this implementation understands; anything else must end the session (spec: Client flags). */
export const KNOWN_CLIENT_FLAGS = ClientFlag.FIXED_NEWSTYLE | ClientFlag.NO_ZEROES;

/** The newstyle greeting: NBDMAGIC, IHAVEOPT, handshake flags FIXED_NEWSTYLE|NO_ZEROES. */
export function encodeGreeting(): Buffer {
  const buf = Buffer.alloc(GREETING_LENGTH);
  buf.writeBigUInt64BE(NBD_MAGIC, 0);
  buf.writeBigUInt64BE(IHAVEOPT_MAGIC, 8);
  buf.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
  return buf;
}

/** For clients: the handshake flags of a newstyle greeting. */
export function decodeGreeting(buf: Buffer, offset = 0): { handshakeFlags: number } {
  requireBytes(buf, offset, GREETING_LENGTH, 'greeting');
  if (buf.readBigUInt64BE(offset) !== NBD_MAGIC) throw new ProtocolError('greeting does not start with NBDMAGIC');
  if (buf.readBigUInt64BE(offset + 8) !== IHAVEOPT_MAGIC) {
    throw new ProtocolError('greeting is not newstyle (second magic is not IHAVEOPT)');
  }
  return { handshakeFlags: buf.readUInt16BE(offset + 16) };
}

export function encodeClientFlags(flags: number): Buffer {
  const buf = Buffer.alloc(CLIENT_FLAGS_LENGTH);
  buf.writeUInt32BE(flags >>> 0, 0);
  return buf;
}

export function decodeClientFlags(buf: Buffer, offset = 0): number {
  requireBytes(buf, offset, CLIENT_FLAGS_LENGTH, 'client flags');
  return buf.readUInt32BE(offset);
}
