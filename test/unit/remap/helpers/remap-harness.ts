import { AllocationFlag, Errno, NbdError } from 'nbd-protocol-ts';
import { expect } from 'vitest';
import { ControlRefusal } from '../../../../src/control/migration-control.js';
import { createRemapper } from '../../../../src/remap/create-remapper.js';
import { RemapMap, type MapExtent } from '../../../../src/remap/map.js';
import type { RemapEngine } from '../../../../src/remap/remap-engine.js';
import type { StateCommitter } from '../../../../src/remap/state-committer.js';
import type { StateRecord } from '../../../../src/remap/state-journal.js';
import type { PagedBitmap } from '../../../../src/remap/paged-bitmap.js';
import { CheckingJournal } from './checking-journal.js';
import { MemoryDevice, patternBytes, prng } from './memory-device.js';
import { readExport } from '../../../../src/server/block-export.js';
import { writtenBlocks } from './written-blocks.js';

export type MapKind = 'identity' | 'shift' | 'permutation' | 'partial';

export interface Scenario {
  blockSize: number;
  /** Whole blocks of the disk; `tail` extra bytes make a short last block. */
  fullBlocks: number;
  tail: number;
  mapKind: MapKind;
  cacheBlocks: number;
  revisitBlocks: number;
  safe: boolean;
  seed: number;
  /** An explicit map instead of `mapKind`. */
  extents?: MapExtent[];
  /** Some blocks are holes of the disk (zeroes that block status reports as such), as in a sparse image. */
  holes?: boolean;
  /** Blocks at each end of the disk kept unless declared free (the engine's keptEdgeBytes); default 0. */
  keptEdgeBlocks?: number;
}

export type Op =
  | { kind: 'srcRead' | 'dstRead' | 'srcStatus'; a: number; b: number; aligned: boolean }
  | { kind: 'srcWrite' | 'dstWrite'; a: number; b: number; aligned: boolean; zero: boolean; seed: number }
  | { kind: 'srcTrim' | 'dstTrim' | 'dstZero'; a: number; b: number; aligned: boolean }
  | { kind: 'flush' | 'checkpoint' | 'seal' | 'attach' | 'detach' | 'finish' }
  | { kind: 'batch'; ops: Op[] };

/** Builds the scenario's map: every kind of map, with and without the disk's short last block. */
export function buildMap(s: Scenario): RemapMap {
  const B = s.blockSize;
  const diskSize = s.fullBlocks * B + s.tail;
  if (s.extents !== undefined) return RemapMap.fromExtents(s.extents, diskSize, B);
  const random = prng(s.seed ^ 0x5eed);
  const shuffle = (xs: number[]): number[] => {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [xs[i], xs[j]] = [xs[j], xs[i]];
    }
    return xs;
  };
  if (s.mapKind === 'identity') return RemapMap.identity(diskSize, B);
  if (s.mapKind === 'shift') {
    const k = 1 + Math.floor(random() * Math.max(1, s.fullBlocks - 1));
    return RemapMap.fromExtents([{ destOffset: 0, length: diskSize - k * B, diskOffset: k * B }], diskSize, B);
  }
  let blocks = shuffle([...Array(s.fullBlocks).keys()]);
  if (s.mapKind === 'partial') blocks = blocks.slice(0, Math.max(1, Math.floor(blocks.length * (0.3 + 0.6 * random()))));
  const extents: MapExtent[] = [];
  let dest = 0;
  for (const p of blocks) {
    const last = extents[extents.length - 1];
    if (last !== undefined && last.diskOffset + last.length === p * B && random() < 0.7) last.length += B;
    else extents.push({ destOffset: dest, length: B, diskOffset: p * B });
    dest += B;
  }
  if (s.tail > 0 && random() < 0.7) extents.push({ destOffset: dest, length: s.tail, diskOffset: s.fullBlocks * B });
  return RemapMap.fromExtents(extents, diskSize, B);
}

function describeError(err: unknown): string {
  if (err instanceof NbdError) return `NbdError ${err.errnoName}: ${err.message}`;
  return err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err);
}

/**
 * Drives one engine with operations and checks, against a plain reference
 * model, after every operation:
 * G1 — the device refuses any write to a block that no client read in full
 *      (or trimmed before sealing, or finish released) or whose `destroy`
 *      record is not committed, and any reuse of a slot that committed
 *      state still gives to another block;
 * G2 — source reads return the originals (as at sealing) or EIO;
 * G3 — destination reads return a value the model allows; never-written
 *      blocks read their home's current device content;
 * G4 — RAM-held bytes never exceed the cache (checked on every device I/O too);
 * G6 — after finish the disk holds what the model says, and destination
 *      reads equal the disk.
 */
export class Harness {
  readonly map: RemapMap;
  readonly device: MemoryDevice;
  readonly journal: CheckingJournal;
  readonly engine: RemapEngine;
  readonly B: number;
  readonly cacheBytes: number;
  readonly violations: string[] = [];
  readonly log: string[] = [];
  private original: Buffer | undefined;
  private sealed = false;
  private finishStarted = false;
  private finished = false;
  private attached = false;
  private readonly free = new Set<number>();
  private freeAtSeal = new Set<number>();
  private readonly readInFull = new Set<number>();
  /** Holes covered whole by a block-status request of the sealed source: the reply may call them a hole, which releases them. */
  private readonly mayBeToldHole = new Set<number>();
  /**
   * What each destination block may read as: one of `values`, or (`orHome`)
   * still its home's current content, because no write to it may have taken
   * effect yet (a failed first write). `values` undefined: too many
   * possibilities to track, anything goes. Absent: never written.
   */
  private readonly dest = new Map<number, { values: Buffer[] | undefined; orHome: boolean }>();
  /** Destination blocks a write to which completed: x-nbd-remapper:written must report them. */
  private readonly tookEffect = new Set<number>();
  private inBatch = false;
  /** Never-written blocks that a mutation in the running batch touches: a concurrent read may see either side. */
  private batchFresh = new Set<number>();
  /** Every value a block could hold at some moment of the running batch (a concurrent read may see any of them). */
  private batchSeen = new Map<number, { values: Buffer[] | undefined; orHome: boolean }>();
  enospc = 0;
  eio = 0;

  /** What this run exercised (the property tests assert that the runs together reach every path). */
  coverage(): Record<string, number> {
    const counts: Record<string, number> = { enospc: this.enospc, eio: this.eio };
    const finishAt = this.journal.committed.findIndex((r) => r.type === 'finish-begin');
    this.journal.committed.forEach((r, i) => {
      const key = i < finishAt || finishAt < 0 ? r.type : `finish:${r.type}`;
      counts[key] = (counts[key] ?? 0) + 1;
    });
    const status = this.engine.status();
    counts.revisitHits = status.revisitCache.hits;
    counts.safeRuns = this.scenario.safe ? 1 : 0;
    return counts;
  }

  constructor(readonly scenario: Scenario) {
    this.map = buildMap(scenario);
    this.B = scenario.blockSize;
    this.device = new MemoryDevice(this.map.diskSize, this.B, prng(scenario.seed));
    // Both ways of landing several RAM blocks at once: writev, and one concatenated write.
    if (scenario.seed % 2 === 0) this.device.writev = undefined;
    patternBytes(this.map.diskSize, scenario.seed).copy(this.device.bytes);
    if (scenario.holes === true) {
      const next = prng(scenario.seed ^ 0x5eed);
      this.device.punchHoles(Array.from({ length: this.map.diskBlocks }, (_, p) => p).filter(() => next() < 0.4));
    }
    this.journal = new CheckingJournal(this.map);
    this.journal.mayRelease = (p) => this.readInFull.has(p);
    this.journal.mayReleaseHole = (p) => this.mayBeToldHole.has(p);
    this.journal.syncedGeneration = (b) => this.device.syncedGeneration(b);
    this.cacheBytes = scenario.cacheBlocks * this.B;
    this.engine = createRemapper({
      device: this.device,
      map: this.map,
      cacheBytes: this.cacheBytes,
      revisitCacheBytes: scenario.revisitBlocks * this.B,
      journal: this.journal,
      safe: scenario.safe,
      keptEdgeBytes: (scenario.keptEdgeBlocks ?? 0) * this.B,
      log: { debug() {}, info: (m) => this.log.push(m), warn: (m) => this.log.push(m), error: (m) => this.log.push(m), child() { return this; } },
    });
    // Test instrumentation: see each record when the engine appends it, to remember which writes it points at.
    const committer = (this.engine as unknown as { s: { committer: StateCommitter } }).s.committer;
    const append = committer.append.bind(committer);
    committer.append = (record: StateRecord): number => {
      const blocks = this.journal.blocksOf(record);
      if (blocks.length > 0) this.journal.pointedAt.set(record, new Map(blocks.map((b) => [b, this.device.generation(b)])));
      return append(record);
    };
    this.device.writeGate = (offset, length) => this.gate(offset, length);
    this.device.onIo = () => this.checkRam('during I/O');
  }

  // ---- the checks -------------------------------------------------------

  private violation(message: string): never {
    this.violations.push(message);
    throw new Error(`VIOLATION: ${message}`);
  }

  private gate(offset: number, length: number): void {
    // Before sealing only the source passthrough writes; after finish the destination is a plain view of the disk.
    if (!this.sealed) return;
    const edge = this.scenario.keptEdgeBlocks ?? 0;
    for (let p = Math.floor(offset / this.B); p * this.B < offset + length; p++) {
      if ((p < edge || p >= this.map.diskBlocks - edge) && !this.map.isHome(p) && !this.freeAtSeal.has(p)) {
        this.violation(`disk block ${p} at the disk's edge is nobody's home and was not declared free, yet it was written`);
      }
    }
    if (this.finished) return;
    for (let p = Math.floor(offset / this.B); p * this.B < offset + length; p++) {
      const allowed = this.finishStarted || this.freeAtSeal.has(p) || this.readInFull.has(p) || this.mayBeToldHole.has(p);
      if (!allowed) this.violation(`G1: disk block ${p} overwritten although its original was never released`);
      if (!this.journal.destroyed.has(p)) this.violation(`disk block ${p} overwritten before its destroy record was committed`);
      const owner = this.journal.ownerOf.get(p);
      if (owner !== undefined) {
        const where = this.engine.locationOf(owner);
        if (where.kind !== 'slot' || where.block !== p) {
          this.violation(`disk block ${p} reused while committed state still says it holds destination block ${owner} (now at ${where.kind} ${where.block ?? ''})`);
        }
      }
    }
  }

  private checkRam(when: string): void {
    const status = this.engine.status();
    if (status.heldInRamBytes > this.cacheBytes) {
      this.violations.push(`G4: ${status.heldInRamBytes} bytes held in RAM ${when}, cache is ${this.cacheBytes}`);
    }
    if (status.cacheBytes > this.cacheBytes) {
      this.violations.push(`G4: ${status.cacheBytes} bytes of RAM in use (held, and kept for a commit in flight) ${when}, cache is ${this.cacheBytes}`);
    }
    if (this.scenario.safe && status.atRisk > 0) this.violations.push(`--safe destroyed ${status.atRisk} unconfirmed original(s)`);
  }

  assertClean(context: string): void {
    this.checkRam('after an operation');
    const all = [...this.violations, ...this.journal.violations];
    if (all.length > 0) expect.fail(`${context}: ${all[0]}${all.length > 1 ? ` (+${all.length - 1} more)` : ''}`);
  }

  // ---- ranges ------------------------------------------------------------

  private range(size: number, a: number, b: number, aligned: boolean): { offset: number; length: number } {
    const B = this.B;
    if (aligned) {
      const blocks = Math.ceil(size / B);
      const first = a % blocks;
      const count = 1 + (b % 4);
      const offset = first * B;
      return { offset, length: Math.min(size, (first + count) * B) - offset };
    }
    const offset = a % size;
    return { offset, length: 1 + (b % Math.min(size - offset, 3 * B)) };
  }

  private homeContent(d: number): Buffer {
    const p = this.map.homeOf(d);
    return Buffer.from(this.device.bytes.subarray(p * this.B, p * this.B + this.map.destBlockLength(d)));
  }

  // ---- operations ----------------------------------------------------------

  async run(op: Op): Promise<void> {
    switch (op.kind) {
      case 'batch':
        return this.batch(op.ops);
      case 'srcRead':
        return this.srcRead(op.a, op.b, op.aligned);
      case 'srcStatus':
        return this.srcStatus(op.a, op.b, op.aligned);
      case 'srcWrite':
        return this.srcWrite(op.a, op.b, op.aligned, op.seed);
      case 'srcTrim':
        return this.srcTrim(op.a, op.b, op.aligned);
      case 'dstWrite':
        return this.dstWrite(op.a, op.b, op.aligned, op.zero ? undefined : op.seed);
      case 'dstZero':
        return this.dstWrite(op.a, op.b, op.aligned, undefined, true);
      case 'dstTrim':
        return this.dstTrim(op.a, op.b, op.aligned);
      case 'dstRead':
        return this.dstRead(op.a, op.b, op.aligned);
      case 'flush':
        await this.engine.destination.flush();
        await this.engine.source.flush();
        return;
      case 'checkpoint':
        return this.checkpoint();
      case 'seal':
        return this.seal();
      case 'attach':
        this.engine.source.attach('client-1');
        this.attached = true;
        return;
      case 'detach':
        this.engine.source.detach('client-1');
        this.attached = false;
        return;
      case 'finish':
        return this.finish();
    }
  }

  async seal(): Promise<void> {
    if (this.sealed) {
      await expect(this.engine.seal()).rejects.toBeInstanceOf(ControlRefusal);
      return;
    }
    this.original = Buffer.from(this.device.bytes);
    this.freeAtSeal = new Set(this.free);
    this.sealed = true;
    await this.engine.seal();
    expect(this.engine.phase).toBe('sealed');
    expect(this.engine.source.capabilities().readOnly).toBe(true);
  }

  private async checkpoint(): Promise<void> {
    if (!this.sealed || this.finishStarted) {
      await expect(this.engine.checkpoint()).rejects.toBeInstanceOf(ControlRefusal);
      return;
    }
    await this.engine.checkpoint();
    // In a batch a concurrent write may destroy, under pressure, an original a concurrent read released after the checkpoint took its snapshot.
    if (!this.inBatch) expect(this.engine.status().atRisk).toBe(0);
  }

  async finish(): Promise<void> {
    if (!this.sealed) {
      await expect(this.engine.finish()).rejects.toBeInstanceOf(ControlRefusal);
      return;
    }
    if (this.attached && !this.finishStarted) {
      await expect(this.engine.finish()).rejects.toThrow(/1 attached client/);
      return;
    }
    this.finishStarted = true;
    const progress: Array<{ done: number; total: number }> = [];
    await this.engine.finish((p) => progress.push(p));
    this.finished = true;
    expect(this.engine.phase).toBe('finished');
    const status = this.engine.status();
    expect([status.heldInRam, status.heldAsZero, status.spilled]).toEqual([0, 0, 0]);
    if (progress.length > 0) {
      const last = progress[progress.length - 1];
      expect(last.done).toBe(last.total);
    }
    this.checkFinished();
  }

  /** G6: every written destination block is at its home with a value the model allows; reads equal the disk. */
  checkFinished(): void {
    for (let d = 0; d < this.map.destinationBlocks; d++) {
      const allowed = this.dest.get(d);
      if (allowed === undefined) continue;
      const onDisk = this.homeContent(d);
      if (!allowed.orHome && allowed.values !== undefined && !allowed.values.some((v) => v.equals(onDisk))) {
        expect.fail(`G6: after finish, destination block ${d} at home ${this.map.homeOf(d)} holds other data than was written`);
      }
      this.dest.set(d, { values: [onDisk], orHome: false });
    }
  }

  private async srcRead(a: number, b: number, aligned: boolean): Promise<void> {
    const { offset, length } = this.range(this.map.diskSize, a, b, aligned);
    const expected = this.sealed ? (this.original as Buffer).subarray(offset, offset + length) : Buffer.from(this.device.bytes.subarray(offset, offset + length));
    if (this.sealed) for (const p of this.wholeBlocksOf(offset, length)) this.readInFull.add(p);
    let got: Buffer;
    const finishedBefore = this.finished;
    try {
      got = await readExport(this.engine.source, offset, length);
      if (finishedBefore) expect.fail('a source read after finish succeeded: the source is gone');
    } catch (err) {
      if (this.sealed && err instanceof NbdError && err.errno === Errno.EIO) {
        // EIO only for an original that is gone: never for one still on the disk or a hole the state remembers as zeroes.
        // Both sets only grow, so what holds now held when the read decided.
        const { destroyed, holes } = (this.engine as unknown as { s: { destroyed: PagedBitmap; holes: PagedBitmap } }).s;
        const first = Math.floor(offset / this.B);
        const last = Math.floor((offset + length - 1) / this.B);
        let gone = false;
        for (let p = first; p <= last; p++) if (destroyed.get(p) && !holes.get(p)) gone = true;
        if (!finishedBefore && !gone) expect.fail(`G2: source read ${offset}+${length} failed with EIO although no block of it lost its original`);
        this.eio++;
        return;
      }
      return expect.fail(`source read ${offset}+${length}: ${describeError(err)}`);
    }
    if (!got.equals(expected)) {
      // Name the first wrong block and what it holds instead.
      for (let i = 0; i < length; i++) {
        if (got[i] !== expected[i]) expect.fail(`G2: source read ${offset}+${length} returned wrong data at disk byte ${offset + i} (block ${Math.floor((offset + i) / this.B)})`);
      }
    }
  }

  /**
   * Block status of source: whatever it calls zero is zeroes in the original
   * (G2 for what a copier skips). Once sealed, whole blocks it calls a hole
   * may be released; the G1 gate allows overwriting them from the request on
   * (a concurrent write may follow the release before the reply arrives here).
   */
  private async srcStatus(a: number, b: number, aligned: boolean): Promise<void> {
    const { offset, length } = this.range(this.map.diskSize, a, b, aligned);
    if (this.sealed && !this.finishStarted) {
      for (const p of this.wholeBlocksOf(offset, length)) if (this.device.isHole(p)) this.mayBeToldHole.add(p);
    }
    const descriptors = await this.engine.source.blockStatus(offset, length);
    const truth = this.sealed ? (this.original as Buffer) : this.device.bytes;
    let at = offset;
    for (const d of descriptors) {
      if ((d.flags & AllocationFlag.ZERO) !== 0) {
        for (let i = at; i < at + d.length; i++) {
          if (truth[i] !== 0) expect.fail(`block status of source ${offset}+${length} calls disk byte ${i} zero, but ${this.sealed ? 'its original' : 'it'} is not`);
        }
      }
      at += d.length;
    }
    expect(at - offset, `block status of source ${offset}+${length} covers the request`).toBe(length);
  }

  /** Disk blocks [offset, offset+length) covers entirely (the short last block when it reaches the end). */
  private wholeBlocksOf(offset: number, length: number): number[] {
    const end = offset + length;
    const f1 = end === this.map.diskSize ? Math.ceil(end / this.B) : Math.floor(end / this.B);
    const out: number[] = [];
    for (let p = Math.ceil(offset / this.B); p < f1; p++) out.push(p);
    return out;
  }

  private async srcWrite(a: number, b: number, aligned: boolean, seed: number): Promise<void> {
    const { offset, length } = this.range(this.map.diskSize, a, b, aligned);
    const data = patternBytes(length, seed);
    if (this.sealed) {
      await expect(this.engine.source.write(offset, data, { fua: false })).rejects.toMatchObject({ errno: Errno.EPERM });
      return;
    }
    for (let p = Math.floor(offset / this.B); p * this.B < offset + length; p++) this.free.delete(p);
    await this.engine.source.write(offset, data, { fua: seed % 3 === 0 });
    expect(this.device.bytes.subarray(offset, offset + length).equals(data)).toBe(true);
  }

  private async srcTrim(a: number, b: number, aligned: boolean): Promise<void> {
    const { offset, length } = this.range(this.map.diskSize, a, b, aligned);
    if (this.sealed) {
      await expect(this.engine.source.trim(offset, length, { fua: false })).rejects.toMatchObject({ errno: Errno.EPERM });
      return;
    }
    const end = offset + length;
    const f1 = end === this.map.diskSize ? Math.ceil(end / this.B) : Math.floor(end / this.B);
    for (let p = Math.ceil(offset / this.B); p < f1; p++) this.free.add(p);
    await this.engine.source.trim(offset, length, { fua: false });
  }

  /** A destination write (data from `seed`, or zeroes; `viaWriteZeroes` uses WRITE_ZEROES). */
  private async dstWrite(a: number, b: number, aligned: boolean, seed: number | undefined, viaWriteZeroes = false): Promise<void> {
    const { offset, length } = this.range(this.map.destinationSize, a, b, aligned);
    const data = seed === undefined ? Buffer.alloc(length) : patternBytes(length, seed);
    const call = (): Promise<void> =>
      viaWriteZeroes
        ? this.engine.destination.writeZeroes(offset, length, { fua: false, mayTrim: true, fast: false })
        : this.engine.destination.write(offset, data, { fua: (seed ?? 0) % 5 === 0 });
    if (!this.sealed) {
      await expect(call()).rejects.toMatchObject({ errno: Errno.EPERM });
      return;
    }
    const B = this.B;
    const updates = new Map<number, { before: Buffer[] | undefined; orHome: boolean; after: Buffer[] | undefined }>();
    for (let d = Math.floor(offset / B); d * B < offset + length; d++) {
      const blockStart = d * B;
      const entry = this.dest.get(d);
      const orHome = entry === undefined || entry.orHome;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + this.map.destBlockLength(d));
      const whole = from === blockStart && to === blockStart + this.map.destBlockLength(d);
      const known = entry === undefined ? [] : entry.values;
      const merge = (v: Buffer): Buffer => {
        const merged = Buffer.from(v);
        data.copy(merged, from - blockStart, from - offset, to - offset);
        return merged;
      };
      // A block that may still read its home is merged with the home's content now (the engine's read-modify-write).
      const after = whole ? [merge(Buffer.alloc(to - from))] : known === undefined ? undefined : unique([...known, ...(orHome ? [this.homeContent(d)] : [])].map(merge));
      updates.set(d, { before: known, orHome, after });
    }
    const either = (u: { before: Buffer[] | undefined; after: Buffer[] | undefined }): Buffer[] | undefined =>
      u.before === undefined || u.after === undefined ? undefined : unique([...u.before, ...u.after]);
    if (this.inBatch) {
      for (const [d, u] of updates) {
        this.dest.set(d, { values: either(u), orHome: u.orHome });
        this.noteSeen(d, either(u), u.orHome);
      }
    }
    try {
      await call();
    } catch (err) {
      if (err instanceof NbdError && err.errno === Errno.ENOSPC && !this.finished) {
        this.enospc++;
        for (const [d, u] of updates) this.dest.set(d, { values: either(u), orHome: u.orHome });
        return;
      }
      return expect.fail(`destination ${viaWriteZeroes ? 'write-zeroes' : 'write'} ${offset}+${length}: ${describeError(err)}`);
    }
    for (const [d, u] of updates) {
      this.dest.set(d, { values: u.after, orHome: false });
      this.tookEffect.add(d);
    }
  }

  private async dstTrim(a: number, b: number, aligned: boolean): Promise<void> {
    const { offset, length } = this.range(this.map.destinationSize, a, b, aligned);
    if (!this.sealed) {
      await expect(this.engine.destination.trim(offset, length, { fua: false })).rejects.toMatchObject({ errno: Errno.EPERM });
      return;
    }
    const end = offset + length;
    const f1 = end === this.map.destinationSize ? Math.ceil(end / this.B) : Math.floor(end / this.B);
    for (let d = Math.ceil(offset / this.B); d < f1; d++) {
      const before = this.dest.get(d);
      // TRIM may zero a written block or leave it; a never-written block keeps reading its home.
      if (before !== undefined && !this.finished) {
        const values = before.values === undefined ? undefined : unique([...before.values, Buffer.alloc(this.map.destBlockLength(d))]);
        this.dest.set(d, { values, orHome: before.orHome });
        if (this.inBatch) this.noteSeen(d, values, before.orHome);
      }
    }
    await this.engine.destination.trim(offset, length, { fua: false });
  }

  private async dstRead(a: number, b: number, aligned: boolean): Promise<void> {
    const { offset, length } = this.range(this.map.destinationSize, a, b, aligned);
    const B = this.B;
    const homesBefore = new Map<number, Buffer>();
    for (let d = Math.floor(offset / B); d * B < offset + length; d++) homesBefore.set(d, this.homeContent(d));
    let got: Buffer;
    try {
      got = await readExport(this.engine.destination, offset, length);
    } catch (err) {
      return expect.fail(`destination read ${offset}+${length}: ${describeError(err)}`);
    }
    for (let d = Math.floor(offset / B); d * B < offset + length; d++) {
      const blockStart = d * B;
      const from = Math.max(offset, blockStart);
      const to = Math.min(offset + length, blockStart + this.map.destBlockLength(d));
      const piece = got.subarray(from - offset, to - offset);
      const allowed = this.dest.get(d);
      const matches = (v: Buffer): boolean => v.subarray(from - blockStart, to - blockStart).equals(piece);
      if (this.inBatch) {
        // Any value the block had at some moment of the batch; its home's content is not checkable while others write.
        if (this.batchFresh.has(d)) continue;
        const seen = this.batchSeen.get(d);
        if (seen !== undefined && (seen.orHome || seen.values === undefined || seen.values.some(matches))) continue;
      }
      if (allowed === undefined) {
        if (this.inBatch) continue;
        const home = homesBefore.get(d) as Buffer;
        if (!matches(home)) expect.fail(`G3: never-written destination block ${d} does not read its home's content`);
        continue;
      }
      if (allowed.values === undefined || allowed.values.some(matches)) continue;
      if (allowed.orHome && (this.inBatch || matches(homesBefore.get(d) as Buffer))) continue;
      expect.fail(`G3: destination block ${d} read back other data than was written (read ${offset}+${length})`);
    }
    if (this.finished) {
      const plain = Buffer.concat(this.map.splitBytes(offset, length).map((p) => this.device.bytes.subarray(p.diskOffset, p.diskOffset + p.length)));
      if (!this.inBatch && !plain.equals(got)) expect.fail('G6: after finish, a destination read differs from the disk');
    }
    if (!this.inBatch) await this.checkBlockStatus(offset, length, got);
  }

  /** G3 through block status: what the destination reports as zero reads as zero (clients skip reading it). */
  private async checkBlockStatus(offset: number, length: number, got: Buffer): Promise<void> {
    const descriptors = await this.engine.destination.blockStatus(offset, length);
    let at = 0;
    for (const { length: n, flags } of descriptors) {
      if (n <= 0) expect.fail(`block status ${offset}+${length}: an empty descriptor`);
      const piece = got.subarray(at, Math.min(length, at + n));
      if ((flags & AllocationFlag.ZERO) !== 0 && !piece.every((b) => b === 0)) {
        expect.fail(`G3: block status reports destination ${offset + at}+${n} as zeroes, but it reads as data`);
      }
      at += n;
    }
    if (at === 0 || at > length) expect.fail(`block status ${offset}+${length}: descriptors cover ${at} bytes`);
    await this.checkWrittenContext(offset, length);
  }

  /** x-nbd-remapper:written: never-written blocks are reported unwritten, blocks whose write took effect written; after finish, all written. */
  private async checkWrittenContext(offset: number, length: number): Promise<void> {
    const B = this.B;
    const written = await writtenBlocks(this.engine.destination, offset, length, B);
    for (const [d, isWritten] of written) {
      if (this.finished) {
        if (!isWritten) expect.fail(`x-nbd-remapper:written reports destination block ${d} as never written after finish`);
        continue;
      }
      if (!this.dest.has(d) && isWritten) expect.fail(`x-nbd-remapper:written reports never-written destination block ${d} as written`);
      if (this.tookEffect.has(d) && !isWritten) expect.fail(`x-nbd-remapper:written reports destination block ${d} as never written, yet a write to it took effect`);
    }
  }

  /** Runs operations concurrently; destination mutations in one batch touch disjoint blocks (their order is undefined). */
  private noteSeen(d: number, values: Buffer[] | undefined, orHome: boolean): void {
    const seen = this.batchSeen.get(d);
    const all = values === undefined || (seen !== undefined && seen.values === undefined) ? undefined : unique([...(seen?.values ?? []), ...values]);
    this.batchSeen.set(d, { values: all, orHome: orHome || (seen?.orHome ?? false) });
  }

  /** The blocks an unaligned range covers only in part all hold data written before (none may still read its home). */
  private partialBlocksWritten(a: number, b: number): boolean {
    const { offset, length } = this.range(this.map.destinationSize, a, b, false);
    const end = offset + length;
    const B = this.B;
    for (const d of new Set([Math.floor(offset / B), Math.ceil(end / B) - 1])) {
      const whole = offset <= d * B && end >= d * B + this.map.destBlockLength(d);
      const entry = this.dest.get(d);
      if (!whole && (entry === undefined || entry.orHome)) return false;
    }
    return true;
  }

  private async batch(ops: Op[]): Promise<void> {
    const claimed = new Set<number>();
    const chosen: Op[] = [];
    this.batchFresh = new Set();
    for (const original of ops) {
      let op = original;
      if (op.kind === 'dstWrite' || op.kind === 'dstZero' || op.kind === 'dstTrim') {
        if (!this.sealed) continue;
        // A partial write of a block that may still read its home merges with the home's content, which concurrent
        // spills may change: such writes go whole. Partial writes of blocks written before merge in RAM concurrently.
        if (!op.aligned && !this.partialBlocksWritten(op.a, op.b)) op = { ...op, aligned: true };
        const { offset, length } = this.range(this.map.destinationSize, op.a, op.b, op.aligned);
        const blocks: number[] = [];
        for (let d = Math.floor(offset / this.B); d * this.B < offset + length; d++) blocks.push(d);
        if (blocks.some((d) => claimed.has(d))) continue;
        for (const d of blocks) {
          claimed.add(d);
          if (!this.dest.has(d)) this.batchFresh.add(d);
        }
      } else if (!['srcRead', 'srcStatus', 'dstRead', 'flush', 'checkpoint'].includes(op.kind)) {
        continue;
      }
      chosen.push(op);
    }
    this.inBatch = true;
    this.batchSeen = new Map();
    try {
      const results = await Promise.allSettled(chosen.map((op) => this.run(op)));
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    } finally {
      this.inBatch = false;
    }
  }
}

/**
 * Distinct values. Repeated failed partial writes double the possibilities;
 * past a cap the model gives up on the block (`undefined`: any value) until a
 * whole-block write pins it down again.
 */
function unique(values: Buffer[] | undefined): Buffer[] | undefined {
  if (values === undefined) return undefined;
  const out: Buffer[] = [];
  for (const v of values) if (!out.some((o) => o.equals(v))) out.push(v);
  return out.length > 64 ? undefined : out;
}
