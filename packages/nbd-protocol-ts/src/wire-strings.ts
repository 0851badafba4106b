import { isUtf8 } from 'node:buffer';
import { Sizes } from './constants.js';

/**
 * Strings on the wire are UTF-8, never NUL-terminated, contain no NUL and are
 * at most 4096 bytes (spec, "Conventions").
 */

/** UTF-8 bytes of a name that must arrive intact (export or context name): too long is a bug, not something to trim. */
export function encodeName(name: string, what: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length > Sizes.MAX_STRING) {
    throw new RangeError(`${what} is ${bytes.length} bytes; the protocol allows at most ${Sizes.MAX_STRING}`);
  }
  return bytes;
}

/**
 * UTF-8 bytes of human-readable text (descriptions, error messages), cut to
 * at most maxBytes without splitting a character: losing the tail of a message
 * is better than failing the reply that carries it.
 */
export function encodeTextTruncated(text: string, maxBytes: number = Sizes.MAX_STRING): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return bytes;
  let end = maxBytes;
  // Step back over continuation bytes (10xxxxxx) so the cut lands on a character boundary.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end);
}

/** Why the bytes are not a valid protocol string, or undefined when they are. */
export function stringDefect(bytes: Buffer): string | undefined {
  if (bytes.length > Sizes.MAX_STRING) return `is ${bytes.length} bytes, more than ${Sizes.MAX_STRING}`;
  if (!isUtf8(bytes)) return 'is not valid UTF-8';
  if (bytes.includes(0)) return 'contains a NUL byte';
  return undefined;
}
