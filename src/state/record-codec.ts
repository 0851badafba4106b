import type { SealSample, StateRecord } from '../remap/state-journal.js';
import { ByteReader, ByteWriter, DecodeError } from './byte-codec.js';
import { FrameKind } from './frame-codec.js';

/**
 * The frame kind and payload of a state record, as parts to write back to
 * back: varints, and for a `hold` its data raw after the block number (the
 * caller's buffer itself, not a copy).
 */
export function encodeRecord(r: StateRecord): { kind: FrameKind; parts: Buffer[] } {
  const { kind, payload } = encodeFields(r);
  return { kind, parts: r.type === 'hold' ? [payload, r.data] : [payload] };
}

/** The record's kind and fields; a `hold`'s data is not among them (encodeRecord appends it). */
function encodeFields(r: StateRecord): { kind: FrameKind; payload: Buffer } {
  const w = new ByteWriter();
  switch (r.type) {
    case 'free':
      return { kind: FrameKind.Free, payload: w.uint(r.start).uint(r.count).finish() };
    case 'unfree':
      return { kind: FrameKind.Unfree, payload: w.uint(r.start).uint(r.count).finish() };
    case 'release':
      return { kind: FrameKind.Release, payload: w.uint(r.start).uint(r.count).finish() };
    case 'release-hole':
      return { kind: FrameKind.ReleaseHole, payload: w.uint(r.start).uint(r.count).finish() };
    case 'destroy':
      return { kind: FrameKind.Destroy, payload: w.uint(r.start).uint(r.count).finish() };
    case 'zero':
      return { kind: FrameKind.Zero, payload: w.uint(r.dest).uint(r.count).finish() };
    case 'land':
      return { kind: FrameKind.Land, payload: w.uint(r.dest).uint(r.count).finish() };
    case 'spill':
      return { kind: FrameKind.Spill, payload: w.uint(r.dest).uint(r.count).uint(r.slot).finish() };
    case 'hold':
      return { kind: FrameKind.Hold, payload: w.uint(r.dest).finish() };
    case 'seal': {
      const samples = r.samples ?? [];
      w.uint(samples.length);
      for (const s of samples) w.uint(s.block).text(s.hash);
      return { kind: FrameKind.Seal, payload: w.finish() };
    }
    case 'checkpoint':
      return { kind: FrameKind.Checkpoint, payload: r.note === undefined ? Buffer.alloc(0) : w.text(r.note).finish() };
    case 'finish-begin':
      return { kind: FrameKind.FinishBegin, payload: Buffer.alloc(0) };
    case 'finished':
      return { kind: FrameKind.Finished, payload: Buffer.alloc(0) };
  }
}

/** The records that name a run of disk blocks, by frame kind. */
const DISK_RUN_TYPES = {
  [FrameKind.Free]: 'free',
  [FrameKind.Unfree]: 'unfree',
  [FrameKind.Release]: 'release',
  [FrameKind.ReleaseHole]: 'release-hole',
  [FrameKind.Destroy]: 'destroy',
} as const;

/**
 * The record in a frame, or undefined when the kind is not a state record
 * (a structure frame). A `hold`'s data is a view into the payload; `dataAt`
 * is its offset inside the payload (the journal keeps file positions, not copies).
 */
export function decodeRecord(kind: number, payload: Buffer): { record: StateRecord; dataAt?: number } | undefined {
  const r = new ByteReader(payload);
  const pair = (): { a: number; b: number } => ({ a: r.uint(), b: r.uint() });
  let record: StateRecord;
  switch (kind) {
    case FrameKind.Free:
    case FrameKind.Unfree:
    case FrameKind.Release:
    case FrameKind.ReleaseHole:
    case FrameKind.Destroy: {
      const { a, b } = pair();
      record = { type: DISK_RUN_TYPES[kind], start: a, count: b };
      break;
    }
    case FrameKind.Zero:
    case FrameKind.Land: {
      const { a, b } = pair();
      record = { type: kind === FrameKind.Zero ? 'zero' : 'land', dest: a, count: b };
      break;
    }
    case FrameKind.Spill: {
      const { a, b } = pair();
      record = { type: 'spill', dest: a, count: b, slot: r.uint() };
      break;
    }
    case FrameKind.Hold: {
      const dest = r.uint();
      const dataAt = r.offset;
      return { record: { type: 'hold', dest, data: r.rest() }, dataAt };
    }
    case FrameKind.Seal: {
      const n = r.uint();
      const samples: SealSample[] = [];
      for (let i = 0; i < n; i++) samples.push({ block: r.uint(), hash: r.text() });
      record = { type: 'seal', samples };
      break;
    }
    case FrameKind.Checkpoint:
      // Without a note the payload is empty (and was, before notes existed).
      record = payload.length === 0 ? { type: 'checkpoint' } : { type: 'checkpoint', note: r.text() };
      break;
    case FrameKind.FinishBegin:
      record = { type: 'finish-begin' };
      break;
    case FrameKind.Finished:
      record = { type: 'finished' };
      break;
    default:
      return undefined;
  }
  r.end();
  if ('count' in record && record.count <= 0) throw new DecodeError(`${record.type} record with count ${record.count}`);
  return { record };
}

/** Why a decoded record cannot belong to this map's disk and destination, or undefined. */
export function recordOutOfRange(r: StateRecord, diskBlocks: number, destinationBlocks: number, destBlockLength: (d: number) => number): string | undefined {
  switch (r.type) {
    case 'free':
    case 'unfree':
    case 'release':
    case 'release-hole':
    case 'destroy':
      return r.start + r.count > diskBlocks ? `${r.type} of disk blocks ${r.start}…${r.start + r.count - 1} outside the disk (${diskBlocks} blocks)` : undefined;
    case 'zero':
    case 'land':
      return r.dest + r.count > destinationBlocks ? `${r.type} of destination blocks outside the destination (${destinationBlocks} blocks)` : undefined;
    case 'spill':
      if (r.dest + r.count > destinationBlocks) return 'spill of destination blocks outside the destination';
      return r.slot + r.count > diskBlocks ? 'spill into slots outside the disk' : undefined;
    case 'hold':
      if (r.dest >= destinationBlocks) return 'hold of a destination block outside the destination';
      return r.data.length !== destBlockLength(r.dest) ? `hold of ${r.data.length} bytes for destination block ${r.dest} of ${destBlockLength(r.dest)} bytes` : undefined;
    case 'seal':
      return r.samples?.some((s) => s.block >= diskBlocks) ? 'seal sample outside the disk' : undefined;
    default:
      return undefined;
  }
}
