/**
 * What `nbd-remapper verify --record` writes: a header line of JSON (format,
 * export size, chunk size, algorithm), then the SHA-256 of each chunk of the
 * export in order, one hex digest per line. Plain text, so that `diff` and
 * `sha256sum` can be used on it too.
 */
export const MANIFEST_FORMAT = 'nbd-remapper-verify/1';

export interface DigestManifest {
  size: number;
  chunkBytes: number;
  /** One 32-byte SHA-256 per chunk; the last chunk may be short. */
  digests: Buffer[];
}

/** A manifest that cannot be used; `fix` says what to do. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

export function formatManifest(m: DigestManifest): string {
  const header = JSON.stringify({ format: MANIFEST_FORMAT, size: m.size, chunkBytes: m.chunkBytes, algorithm: 'sha256' });
  return `${header}\n${m.digests.map((d) => d.toString('hex')).join('\n')}\n`;
}

export function parseManifest(text: string, path: string): DigestManifest {
  const fail = (why: string): never => {
    throw new ManifestError(`${path} is not a verify record: ${why}`, 'give the file `nbd-remapper verify --record` wrote');
  };
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  let header: { format?: unknown; size?: unknown; chunkBytes?: unknown; algorithm?: unknown };
  try {
    header = JSON.parse(lines[0] ?? '') as typeof header;
  } catch {
    return fail('its first line is not JSON');
  }
  if (header.format !== MANIFEST_FORMAT) fail(`its format is ${JSON.stringify(header.format)}, not ${MANIFEST_FORMAT}`);
  if (header.algorithm !== 'sha256') fail(`its algorithm is ${JSON.stringify(header.algorithm)}, not sha256`);
  const size = header.size;
  const chunkBytes = header.chunkBytes;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) return fail('its size is not a byte count');
  if (typeof chunkBytes !== 'number' || !Number.isSafeInteger(chunkBytes) || chunkBytes < 1) return fail('its chunk size is not a byte count');
  const expected = Math.ceil(size / chunkBytes);
  const digests = lines.slice(1).map((line, i) => {
    if (!/^[0-9a-f]{64}$/.test(line)) fail(`line ${i + 2} is not a SHA-256 in hex`);
    return Buffer.from(line, 'hex');
  });
  if (digests.length !== expected) fail(`it has ${digests.length} digests where ${expected} chunks of ${chunkBytes} bytes cover ${size} bytes (cut short?)`);
  return { size, chunkBytes, digests };
}
