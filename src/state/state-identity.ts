import { createHash, randomInt } from 'node:crypto';
import { mergeAdjacentExtents, type MapExtent, type RemapMap } from '../remap/map.js';

/**
 * 2: frames after the header carry this file's frameSeed in their checksum.
 * 1 (read, never written): no seed.
 */
export const STATE_FORMAT = 2;
const READABLE_FORMATS = [1, 2];

/**
 * The header of a state file: which disk and map the migration is about.
 * `mapHash` (sha256 of the block size, disk size and extents) is the
 * fingerprint the CLI can show; content samples of the disk are taken at
 * sealing (the `seal` record), when the originals stop changing.
 */
export interface StateIdentity {
  format: number;
  diskSize: number;
  blockSize: number;
  extents: MapExtent[];
  mapHash: string;
  /** Informational: where the disk was when the state was created. */
  diskPath: string;
  createdAt: string;
  /**
   * Starts the crc32 of every frame after the header (0 in format 1), drawn
   * at random for each migration — as jbd2 seeds its checksums with the
   * filesystem's UUID: a frame of another state file, found in held data
   * (a copied filesystem may contain one), never passes for one of this file.
   */
  frameSeed: number;
}

export function mapFingerprint(diskSize: number, blockSize: number, extents: readonly MapExtent[]): string {
  const canonical = JSON.stringify({ diskSize, blockSize, extents: extents.map((e) => [e.destOffset, e.length, e.diskOffset]) });
  return createHash('sha256').update(canonical).digest('hex');
}

export function identityOf(map: RemapMap, diskPath: string): StateIdentity {
  const extents = map.extents.map((e) => ({ destOffset: e.destOffset, length: e.length, diskOffset: e.diskOffset }));
  return {
    format: STATE_FORMAT,
    diskSize: map.diskSize,
    blockSize: map.blockSize,
    extents,
    mapHash: mapFingerprint(map.diskSize, map.blockSize, extents),
    diskPath,
    createdAt: new Date().toISOString(),
    frameSeed: randomInt(1, 2 ** 32),
  };
}

/** A header parsed from JSON, checked field by field (a checksummed header can still come from a newer version). */
export function parseIdentity(json: string): StateIdentity | string {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return 'the header is not JSON';
  }
  const o = v as Partial<Record<keyof StateIdentity, unknown>>;
  if (typeof o !== 'object' || o === null) return 'the header is not an object';
  if (typeof o.format !== 'number' || !READABLE_FORMATS.includes(o.format)) {
    return `state format ${String(o.format)} is not one this version reads (${READABLE_FORMATS.join(', ')})`;
  }
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!int(o.diskSize) || !int(o.blockSize)) return 'the header lacks the disk size or block size';
  if (!Array.isArray(o.extents) || !o.extents.every((e: Partial<MapExtent>) => int(e?.destOffset) && int(e?.length) && int(e?.diskOffset))) {
    return 'the header has no valid map';
  }
  if (typeof o.mapHash !== 'string' || typeof o.diskPath !== 'string' || typeof o.createdAt !== 'string') return 'the header lacks its fingerprint';
  const extents = o.extents as MapExtent[];
  if (o.mapHash !== mapFingerprint(o.diskSize, o.blockSize, extents)) return 'the map in the header does not match its fingerprint';
  const frameSeed = o.format === 1 ? 0 : o.frameSeed;
  if (typeof frameSeed !== 'number' || !Number.isInteger(frameSeed) || frameSeed < 0 || frameSeed >= 2 ** 32) return 'the header lacks its frame seed';
  return { format: o.format, diskSize: o.diskSize, blockSize: o.blockSize, extents, mapHash: o.mapHash, diskPath: o.diskPath, createdAt: o.createdAt, frameSeed };
}

/** What differs between a state's identity and the disk and map of this run (empty: it belongs). */
export function identityDifferences(id: StateIdentity, disk: { size: number; path: string }, map: RemapMap | undefined, blockSize: number | undefined): string[] {
  const out: string[] = [];
  if (id.diskSize !== disk.size) {
    out.push(`it was made for a disk of ${id.diskSize} bytes (${id.diskPath}), but ${disk.path} has ${disk.size} bytes`);
  }
  const B = map?.blockSize ?? blockSize;
  if (B !== undefined && B !== id.blockSize) out.push(`its block size is ${id.blockSize}, this run asks for ${B}`);
  if (map !== undefined && out.length === 0) {
    // Both merged: a state written before maps were merged records them as listed.
    const given = map.extents;
    const recorded = mergeAdjacentExtents(id.extents);
    const n = Math.max(given.length, recorded.length);
    for (let i = 0; i < n; i++) {
      const a = recorded[i];
      const b = given[i];
      if (a !== undefined && b !== undefined && a.destOffset === b.destOffset && a.length === b.length && a.diskOffset === b.diskOffset) continue;
      const show = (e: MapExtent | undefined): string => (e === undefined ? 'nothing' : `{destOffset ${e.destOffset}, length ${e.length}, diskOffset ${e.diskOffset}}`);
      const merging = recorded.length !== id.extents.length || given.length !== map.listedExtents ? ' (counting adjacent extents merged)' : '';
      out.push(`the map given differs from the state's map at extent ${i}${merging}: the state has ${show(a)}, the map given has ${show(b)}`);
      break;
    }
  }
  return out;
}
