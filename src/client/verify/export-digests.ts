import { createHash } from 'node:crypto';
import type { NbdClient } from '../nbd-client.js';

/**
 * The SHA-256 of each `chunkBytes` piece of the export (the last may be
 * short), reading `requests` pieces at a time; each buffer is reused once
 * hashed, so memory stays at `requests` chunks.
 */
export async function exportDigests(client: NbdClient, chunkBytes: number, requests: number, onProgress?: (done: number, total: number) => void): Promise<Buffer[]> {
  const size = client.size;
  const chunks = Math.ceil(size / chunkBytes);
  const digests: Buffer[] = new Array<Buffer>(chunks);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    const buffer = Buffer.allocUnsafe(chunkBytes);
    for (let i = next++; i < chunks; i = next++) {
      const offset = i * chunkBytes;
      const piece = buffer.subarray(0, Math.min(chunkBytes, size - offset));
      await client.preadInto(piece, offset);
      digests[i] = createHash('sha256').update(piece).digest();
      done += piece.length;
      onProgress?.(done, size);
    }
  };
  await Promise.all(Array.from({ length: Math.min(requests, Math.max(1, chunks)) }, worker));
  return digests;
}
