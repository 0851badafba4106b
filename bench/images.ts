/** Image files for the benchmarks: random contents (no holes, no zero blocks the engine could hold as extents). */
import { closeSync, copyFileSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import { MiB } from './config.js';

export function fillRandom(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 * MiB);
  try {
    for (let done = 0; done < size; done += chunk.length) {
      randomFillSync(chunk);
      writeSync(fd, chunk, 0, Math.min(chunk.length, size - done), done);
    }
  } finally {
    closeSync(fd);
  }
}

/** A fresh copy of a prepared image (page-cached like the original). */
export function copyImage(from: string, to: string): void {
  copyFileSync(from, to);
}

export interface MapExtent {
  destOffset: number;
  length: number;
  diskOffset: number;
}

export function writeMap(path: string, extents: MapExtent[]): void {
  writeFileSync(path, JSON.stringify({ extents }));
}

/** Destination chunk i lives at disk chunk n-1-i: every block moves, half the disk is held before its home is read. */
export function reversedChunks(size: number, chunks: number): MapExtent[] {
  const length = size / chunks;
  if (!Number.isInteger(length) || length % (64 * 1024) !== 0) throw new Error(`cannot cut ${size} bytes into ${chunks} aligned chunks`);
  return Array.from({ length: chunks }, (_, i) => ({ destOffset: i * length, length, diskOffset: (chunks - 1 - i) * length }));
}
