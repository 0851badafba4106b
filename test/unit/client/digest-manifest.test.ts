import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManifestError, formatManifest, parseManifest } from '../../../src/client/verify/digest-manifest.js';

const sha = (text: string): Buffer => createHash('sha256').update(text).digest();

describe('verify records', () => {
  it('read back what was written, the short last chunk included', () => {
    const manifest = { size: 10_000, chunkBytes: 4096, digests: [sha('a'), sha('b'), sha('c')] };
    const text = formatManifest(manifest);
    expect(text.split('\n')).toHaveLength(5);
    expect(parseManifest(text, 'r')).toEqual(manifest);
  });

  it.each([
    ['', /first line is not JSON/],
    ['{"format":"other/1","size":4096,"chunkBytes":4096,"algorithm":"sha256"}\n', /format is "other\/1"/],
    ['{"format":"nbd-remapper-verify/1","size":4096,"chunkBytes":4096,"algorithm":"md5"}\n', /algorithm is "md5"/],
    ['{"format":"nbd-remapper-verify/1","size":-1,"chunkBytes":4096,"algorithm":"sha256"}\n', /size is not a byte count/],
    ['{"format":"nbd-remapper-verify/1","size":4096,"chunkBytes":0,"algorithm":"sha256"}\n', /chunk size is not a byte count/],
    ['{"format":"nbd-remapper-verify/1","size":8192,"chunkBytes":4096,"algorithm":"sha256"}\n' + `${'ab'.repeat(32)}\n`, /1 digests where 2 chunks .* \(cut short\?\)/],
    ['{"format":"nbd-remapper-verify/1","size":4096,"chunkBytes":4096,"algorithm":"sha256"}\nxyz\n', /line 2 is not a SHA-256/],
  ])('refuses %j', (text, reason) => {
    let caught: unknown;
    try {
      parseManifest(text, 'rec.sha256');
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ManifestError);
    expect((caught as Error).message).toMatch(/^rec\.sha256 is not a verify record: /);
    expect((caught as Error).message).toMatch(reason);
  });
});
