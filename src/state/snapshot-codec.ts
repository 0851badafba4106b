import type { RemapMap } from '../remap/map.js';
import type { PagedBitmap } from '../remap/paged-bitmap.js';
import type { Phase } from '../remap/block-layout.js';
import type { IntervalSet } from '../remap/run-map.js';
import { ByteReader, ByteWriter, DecodeError } from './byte-codec.js';
import { DurableState, type HoldRef } from './durable-state.js';
import { FRAME_HEADER_BYTES, FrameKind, type Frame } from './frame-codec.js';
import { decodeRecord, encodeRecord } from './record-codec.js';

/** A snapshot frame to write, its payload as parts written back to back: `hold` frames carry their data (read from the old file). */
export interface SnapshotFrame {
  kind: FrameKind;
  parts: Buffer[];
  /** For hold frames: the destination block and where its data starts in the payload. */
  hold?: { dest: number; dataAt: number; length: number };
}

const PHASES: readonly Phase[] = ['unsealed', 'sealed', 'finishing', 'finished'];

/** Which set a SnapshotRuns frame fills. */
enum RunSet {
  Free = 1,
  Released = 2,
  Trimmed = 3,
  Unconfirmed = 4,
  Destroyed = 5,
  Landed = 6,
  Zeros = 7,
  Holes = 8,
}

/** Run lists are cut into frames of about this many bytes. */
const RUNS_FRAME_BYTES = 1024 * 1024;

/**
 * The snapshot section of a state file, written at compaction: a begin frame
 * (phase, counters, seal samples), the sets as run lists, the spill index as
 * `spill` records, held data as `hold` records, and an end frame with the
 * number of frames in between. All frames carry the batch number the
 * snapshot covers; the log continues with the next one.
 */
export async function* snapshotFrames(state: DurableState, readHold: (ref: HoldRef) => Promise<Buffer>): AsyncGenerator<SnapshotFrame> {
  const begin = new ByteWriter().uint(PHASES.indexOf(state.phase)).uint(state.anyLanded ? 1 : 0).uint(state.records).uint(state.samples.length);
  for (const s of state.samples) begin.uint(s.block).text(s.hash);
  yield { kind: FrameKind.SnapshotBegin, parts: [begin.finish()] };
  let count = 0;
  const bitmapRuns = (b: PagedBitmap): Iterable<{ start: number; end: number }> => {
    const runs: Array<{ start: number; end: number }> = [];
    b.forEachRun(true, 0, b.size, (start, end) => runs.push({ start, end }));
    return runs;
  };
  const setRuns = (s: IntervalSet): Iterable<{ start: number; end: number }> => [...s.all()];
  const sets: Array<[RunSet, Iterable<{ start: number; end: number }>]> = [
    [RunSet.Free, setRuns(state.free)],
    [RunSet.Released, bitmapRuns(state.released)],
    [RunSet.Trimmed, bitmapRuns(state.trimmed)],
    [RunSet.Unconfirmed, bitmapRuns(state.unconfirmed)],
    [RunSet.Destroyed, bitmapRuns(state.destroyed)],
    [RunSet.Landed, bitmapRuns(state.landed)],
    [RunSet.Zeros, setRuns(state.zeros)],
    [RunSet.Holes, bitmapRuns(state.holes)],
  ];
  for (const [id, runs] of sets) {
    let w = new ByteWriter().uint(id);
    let at = 0;
    for (const run of runs) {
      w.uint(run.start - at).uint(run.end - run.start);
      at = run.end;
      if (w.length >= RUNS_FRAME_BYTES) {
        yield { kind: FrameKind.SnapshotRuns, parts: [w.finish()] };
        count++;
        w = new ByteWriter().uint(id);
        at = 0;
      }
    }
    yield { kind: FrameKind.SnapshotRuns, parts: [w.finish()] };
    count++;
  }
  for (const run of state.spill.all()) {
    yield encodeRecord({ type: 'spill', dest: run.start, count: run.end - run.start, slot: run.value });
    count++;
  }
  if (state.checkpointNote !== undefined) {
    yield encodeRecord({ type: 'checkpoint', note: state.checkpointNote });
    count++;
  }
  // In file order, so the reader of the old file streams instead of seeking block by block.
  const holds = [...state.holds].sort((a, b) => a[1].position - b[1].position);
  for (const [dest, ref] of holds) {
    const data = await readHold(ref);
    const { kind, parts } = encodeRecord({ type: 'hold', dest, data });
    yield { kind, parts, hold: { dest, dataAt: parts[0].length, length: data.length } };
    count++;
  }
  yield { kind: FrameKind.SnapshotEnd, parts: [new ByteWriter().uint(count).finish()] };
}

/**
 * Rebuilds the state from a snapshot's frames (begin … end, all valid). Throws
 * DecodeError on anything that does not fit: a checksummed snapshot that does
 * not parse is damage, never a crash (it was synced before it was renamed in).
 */
export class SnapshotReader {
  readonly state: DurableState;
  private frames = 0;
  private ended = false;

  constructor(map: RemapMap, begin: Frame) {
    if (begin.kind !== FrameKind.SnapshotBegin) throw new DecodeError(`expected the snapshot's begin frame, found frame kind ${begin.kind}`);
    this.state = new DurableState(map);
    const r = new ByteReader(begin.payload);
    const phase = PHASES[r.uint()];
    if (phase === undefined) throw new DecodeError('unknown phase');
    this.state.phase = phase;
    this.state.anyLanded = r.uint() === 1;
    this.state.records = r.uint();
    const n = r.uint();
    for (let i = 0; i < n; i++) this.state.samples.push({ block: r.uint(), hash: r.text() });
    r.end();
  }

  get done(): boolean {
    return this.ended;
  }

  /** Takes the next frame; true once the end frame was read. */
  add(frame: Frame): boolean {
    const s = this.state;
    if (frame.kind === FrameKind.SnapshotEnd) {
      const r = new ByteReader(frame.payload);
      const expected = r.uint();
      r.end();
      if (expected !== this.frames) throw new DecodeError(`the snapshot's end frame counts ${expected} frames, ${this.frames} were read`);
      this.ended = true;
      return true;
    }
    this.frames++;
    if (frame.kind === FrameKind.SnapshotRuns) {
      const r = new ByteReader(frame.payload);
      const id = r.uint() as RunSet;
      let at = 0;
      while (!r.done) {
        const start = at + r.uint();
        const end = start + r.uint();
        at = end;
        this.fill(id, start, end);
      }
      return false;
    }
    const decoded = decodeRecord(frame.kind, frame.payload);
    if (decoded === undefined) throw new DecodeError(`unexpected frame kind ${frame.kind} inside the snapshot`);
    const rec = decoded.record;
    if (rec.type === 'spill') {
      this.checkDest(rec.dest + rec.count);
      this.checkDisk(rec.slot + rec.count);
      s.spill.set(rec.dest, rec.count, rec.slot);
      s.slotOwner.set(rec.slot, rec.count, rec.dest);
    } else if (rec.type === 'checkpoint' && rec.note !== undefined) {
      // Only the note: what it confirmed is in the Unconfirmed runs already.
      s.checkpointNote = rec.note;
    } else if (rec.type === 'hold') {
      this.checkDest(rec.dest + 1);
      s.holds.set(rec.dest, { position: frame.offset + FRAME_HEADER_BYTES + (decoded.dataAt ?? 0), length: rec.data.length });
    } else {
      throw new DecodeError(`unexpected ${rec.type} record inside the snapshot`);
    }
    return false;
  }

  private fill(id: RunSet, start: number, end: number): void {
    const s = this.state;
    if (id === RunSet.Zeros) {
      this.checkDest(end);
      s.zeros.add(start, end);
      return;
    }
    this.checkDisk(end);
    if (id === RunSet.Free) s.free.add(start, end);
    else if (id === RunSet.Released) s.released.setRange(start, end);
    else if (id === RunSet.Trimmed) s.trimmed.setRange(start, end);
    else if (id === RunSet.Unconfirmed) s.unconfirmed.setRange(start, end);
    else if (id === RunSet.Destroyed) s.destroyed.setRange(start, end);
    else if (id === RunSet.Landed) s.landed.setRange(start, end);
    else if (id === RunSet.Holes) s.holes.setRange(start, end);
    else throw new DecodeError(`unknown set ${id as number} in the snapshot`);
  }

  private checkDisk(end: number): void {
    if (end > this.state.map.diskBlocks) throw new DecodeError(`disk block ${end - 1} is outside the disk (${this.state.map.diskBlocks} blocks)`);
  }

  private checkDest(end: number): void {
    if (end > this.state.map.destinationBlocks) throw new DecodeError(`destination block ${end - 1} is outside the destination (${this.state.map.destinationBlocks} blocks)`);
  }
}
