/** Bytes from hex written by hand (spaces and newlines allowed), refusing typos rather than silently truncating. */
export function hex(...parts: string[]): Buffer {
  const digits = parts.join('').replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new Error(`not a whole number of hex bytes: ${digits}`);
  return Buffer.from(digits, 'hex');
}

/** Hex of ASCII text, for names inside vectors. */
export function ascii(text: string): string {
  return Buffer.from(text, 'latin1').toString('hex');
}
