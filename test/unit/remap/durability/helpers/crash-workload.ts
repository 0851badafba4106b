import { Errno, NbdError } from 'nbd-protocol-ts';
import type { Logger } from '../../../../../src/log/logger.js';
import type { RemapMap } from '../../../../../src/remap/map.js';
import type { RemapEngine } from '../../../../../src/remap/remap-engine.js';
import { isRetryableCommitFailure } from '../../../../../src/remap/state-journal.js';
import { openMigration, type OpenedMigration } from '../../../../../src/state/open-migration.js';
import { buildMap, type Scenario } from '../../helpers/remap-harness.js';
import { writtenBlocks } from '../../helpers/written-blocks.js';
import { patternBytes, prng } from '../../helpers/memory-device.js';
import { CrashDisk, CrashFs, materialise, SECTOR, type CrashMode, type CrashSnapshot, type Recorder } from './crash-world.js';

export const STATE_PATH = '/state/disk.remap-state';

export interface CrashScenario extends Scenario {
  /** The journal compacts past this many log bytes: small values put crash points inside compactions. */
  compactBytes: number;
}

/**
 * Records queued before a commit starts in the background: small values make
 * background commits (and their device syncs of their own) happen all the
 * time. From the seed, so that scenarios keep drawing the same numbers.
 */
export function backgroundCommitRecordsOf(scenario: Pick<CrashScenario, 'seed'>): number {
  return [2, 5, 4096][scenario.seed % 3];
}

/**
 * Blocks at each end of the disk kept from spills unless declared free
 * (the engine's keptEdgeBytes): these disks are smaller than the default
 * MiB, so most scenarios keep none and spill into read blocks that are
 * nobody's home, as a partition moved forward does. From the seed.
 */
export function keptEdgeBlocksOf(scenario: Pick<CrashScenario, 'seed'>): number {
  return [0, 0, 0, 1, 2][Math.floor(scenario.seed / 3) % 5];
}

/**
 * For a quarter of the scenarios (from the seed), the state's file system is
 * full for about a third of its writes between the seal and finish: commits
 * fail, are cut off again and retried, and the crash states must still keep
 * every acknowledged FLUSH (docs/durability.md, "When the state file cannot be written").
 */
export function fillsUpOf(scenario: Pick<CrashScenario, 'seed'>): boolean {
  return Math.floor(scenario.seed / 3) % 4 === 1;
}

/**
 * For another quarter, the disk image's file system (a sparse image) is full
 * for about a quarter of the disk writes in the same window: a write stores
 * a whole number of sectors, maybe none, and fails with ENOSPC. Landings,
 * spills and slot rewrites fail half done; the engine must keep what it
 * acknowledged and never serve what it overwrote.
 */
export function diskFillsUpOf(scenario: Pick<CrashScenario, 'seed'>): boolean {
  return Math.floor(scenario.seed / 3) % 4 === 2;
}

/** A disk write that found the image's file system full. */
function isDiskFull(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | null;
  return e?.code === 'ENOSPC' && e.syscall === 'write';
}

export type CrashOp =
  | { kind: 'srcWrite'; p: number; n: number; seed: number }
  | { kind: 'srcTrim'; p: number; n: number }
  | { kind: 'seal' }
  | { kind: 'srcRead'; p: number; n: number }
  | { kind: 'dstWrite'; d: number; n: number; seed: number; zero: boolean; fua: boolean }
  /** Part of one block: the engine merges it with what the block holds (RAM, slot or home). */
  | { kind: 'dstPart'; d: number; at: number; length: number; seed: number; fua: boolean }
  | { kind: 'dstZero'; d: number; n: number }
  | { kind: 'dstTrim'; d: number; n: number }
  | { kind: 'flush' }
  | { kind: 'checkpoint' }
  | { kind: 'finish' };

/** A destination block's value in the model: data, "anything" (never written, or a failed write), or "zero or what it was" (trim). */
type Value = Buffer | 'ANY' | 'TRIM';

export const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => silent };

/** A crash point: the world's durable state and pending writes just before some I/O, during operation `op`. */
export interface CrashPoint {
  op: number;
  snap: CrashSnapshot;
}

/** Random operations for a scenario (sequential: each completes before the next). */
export function randomOps(map: RemapMap, random: () => number, opts: { finish: boolean; length: number }): CrashOp[] {
  const P = map.diskBlocks;
  const D = map.destinationBlocks;
  const int = (n: number): number => Math.floor(random() * n);
  const ops: CrashOp[] = [];
  for (let i = int(3); i > 0; i--) ops.push(random() < 0.5 ? { kind: 'srcWrite', p: int(P), n: 1, seed: int(1e9) } : { kind: 'srcTrim', p: int(P), n: 1 + int(3) });
  ops.push({ kind: 'seal' });
  for (let i = 0; i < opts.length; i++) {
    const x = random();
    const d = int(D);
    const n = 1 + int(Math.min(3, D - d));
    if (x < 0.3) ops.push({ kind: 'srcRead', p: int(P), n: 1 + int(4) });
    else if (x < 0.62) ops.push({ kind: 'dstWrite', d, n, seed: int(1e9), zero: random() < 0.1, fua: random() < 0.15 });
    else if (x < 0.68) {
      const at = int(map.destBlockLength(d) - 1);
      ops.push({ kind: 'dstPart', d, at, length: 1 + int(map.destBlockLength(d) - at - 1), seed: int(1e9), fua: random() < 0.15 });
    }
    else if (x < 0.73) ops.push({ kind: 'dstZero', d, n });
    else if (x < 0.77) ops.push({ kind: 'dstTrim', d, n });
    else if (x < 0.92) ops.push({ kind: 'flush' });
    else ops.push({ kind: 'checkpoint' });
  }
  if (opts.finish) ops.push({ kind: 'flush' }, { kind: 'finish' });
  return ops;
}

/**
 * Runs operations on a crash world through `openMigration`, keeping a model
 * of what every crash point allows, and takes a snapshot at every I/O.
 * `check` then recovers one crash state and checks G2, G3, G5 and G6.
 */
export class CrashRun implements Recorder {
  readonly map: RemapMap;
  readonly B: number;
  readonly points: CrashPoint[] = [];
  readonly disk: CrashDisk;
  readonly fs: CrashFs;
  private op = -1;
  private readonly initial: Buffer;
  original: Buffer | undefined;
  private readonly hist = new Map<number, Array<{ op: number; v: Value }>>();
  /** Completed flushes (and checkpoints, which flush) by op index. */
  private readonly flushes: number[] = [];
  private readonly fua = new Map<number, number[]>();
  private readonly releasedAt = new Map<number, number>();
  private readonly checkpoints: number[] = [];
  private finishAt = Infinity;
  /** Trimmed on source before sealing: released and confirmed by the seal. */
  private readonly free = new Set<number>();
  private sealAt = Infinity;
  migration: OpenedMigration | undefined;
  /** Takes a snapshot at every n-th event only (long runs). */
  sampleEvery = 1;
  private events = 0;
  enospc = 0;
  eio = 0;
  /** Operations that failed because the state's file system was full. */
  full = 0;
  /** Operations that failed because the disk image's file system was full. */
  diskFull = 0;
  /** Writes of part of a block that succeeded (merged with what the block held). */
  partial = 0;
  /** Between the seal and the flush before finish, when the scenario fills up: state-file writes may find no room. */
  private filling = false;
  private sealed = false;
  /** Operations from this index on never find the file system full: the flush before finish makes everything served durable. */
  private fillingEnds = Infinity;

  constructor(readonly scenario: CrashScenario) {
    this.map = buildMap(scenario);
    this.B = scenario.blockSize;
    this.initial = patternBytes(this.map.diskSize, scenario.seed);
    this.disk = new CrashDisk(this.initial, this);
    this.fs = new CrashFs(this);
    if (fillsUpOf(scenario)) {
      const random = prng(scenario.seed ^ 0x5eed);
      this.fs.isFull = () => this.filling && random() < 0.35;
    }
    if (diskFillsUpOf(scenario)) {
      const random = prng(scenario.seed ^ 0xd15c);
      this.disk.isFull = () => this.filling && random() < 0.25;
    }
  }

  onEvent(): void {
    if (this.events++ % this.sampleEvery !== 0) return;
    this.points.push({ op: this.op, snap: { disk: this.disk.snapshot(), fs: this.fs.snapshot() } });
  }

  get engine(): RemapEngine {
    return (this.migration as OpenedMigration).engine;
  }

  async open(): Promise<void> {
    this.migration = await openMigration({
      disk: this.disk,
      diskPath: 'disk.img',
      statePath: STATE_PATH,
      map: this.map,
      cacheBytes: this.scenario.cacheBlocks * this.B,
      revisitCacheBytes: this.scenario.revisitBlocks * this.B,
      safe: this.scenario.safe,
      log: silent,
      fs: this.fs,
      compactBytes: this.scenario.compactBytes,
      backgroundCommitRecords: backgroundCommitRecordsOf(this.scenario),
      keptEdgeBytes: keptEdgeBlocksOf(this.scenario) * this.B,
    });
  }

  /** `before(i)`: runs before operation i (e.g. to read what the destination serves before finish). */
  async run(ops: CrashOp[], before?: (i: number) => Promise<void>): Promise<void> {
    const finish = ops.findIndex((o) => o.kind === 'finish');
    if (finish >= 0) this.fillingEnds = finish - 1;
    await this.open();
    for (let i = 0; i < ops.length; i++) {
      await before?.(i);
      this.op = i;
      await this.apply(ops[i], i);
    }
    this.op = ops.length;
    this.onEvent();
  }

  private record(d: number, op: number, v: Value): void {
    let list = this.hist.get(d);
    if (list === undefined) this.hist.set(d, (list = []));
    list.push({ op, v });
  }

  private async apply(o: CrashOp, i: number): Promise<void> {
    // The model takes a checkpoint as done or not done, so none finds the file system full (a failed
    // checkpoint's record is still committed later, which the model would have to guess).
    this.filling = this.sealed && i < this.fillingEnds && o.kind !== 'checkpoint';
    try {
      await this.applyOp(o, i);
    } catch (err) {
      const diskFull = !isRetryableCommitFailure(err) && isDiskFull(err);
      if (!diskFull && !isRetryableCommitFailure(err)) throw err;
      // A commit or a disk write found its file system full: the operation failed and promised nothing.
      if (diskFull) this.diskFull++;
      else this.full++;
      if (o.kind === 'dstWrite' || o.kind === 'dstZero' || o.kind === 'dstTrim') for (let k = 0; k < o.n; k++) this.record(o.d + k, i, 'ANY');
      if (o.kind === 'dstPart') this.record(o.d, i, 'ANY');
    } finally {
      this.filling = false;
    }
    if (o.kind === 'seal') this.sealed = true;
  }

  private async applyOp(o: CrashOp, i: number): Promise<void> {
    const e = this.engine;
    const B = this.B;
    switch (o.kind) {
      case 'srcWrite': {
        const n = Math.min(o.n, this.map.diskBlocks - o.p);
        const len = (n - 1) * B + this.map.diskBlockLength(o.p + n - 1);
        await e.source.write(o.p * B, patternBytes(len, o.seed), { fua: false });
        for (let k = 0; k < n; k++) this.free.delete(o.p + k);
        return;
      }
      case 'srcTrim': {
        const n = Math.min(o.n, this.map.diskBlocks - o.p);
        await e.source.trim(o.p * B, (n - 1) * B + this.map.diskBlockLength(o.p + n - 1), { fua: false });
        for (let k = 0; k < n; k++) this.free.add(o.p + k);
        return;
      }
      case 'seal':
        this.original = Buffer.from(this.disk.bytes);
        this.sealAt = i;
        await e.seal();
        return;
      case 'srcRead': {
        const n = Math.min(o.n, this.map.diskBlocks - o.p);
        const buf = Buffer.alloc((n - 1) * B + this.map.diskBlockLength(o.p + n - 1));
        try {
          await e.source.readInto(buf, o.p * B);
        } catch (err) {
          if (err instanceof NbdError && err.errno === Errno.EIO) {
            this.eio++;
            return;
          }
          throw err;
        }
        for (let k = 0; k < n; k++) if (!this.releasedAt.has(o.p + k)) this.releasedAt.set(o.p + k, i);
        return;
      }
      case 'dstWrite': {
        const len = (o.n - 1) * B + this.map.destBlockLength(o.d + o.n - 1);
        const data = o.zero ? Buffer.alloc(len) : patternBytes(len, o.seed);
        try {
          await e.destination.write(o.d * B, data, { fua: o.fua });
        } catch (err) {
          if (err instanceof NbdError && err.errno === Errno.ENOSPC) {
            this.enospc++;
            for (let k = 0; k < o.n; k++) this.record(o.d + k, i, 'ANY');
            return;
          }
          throw err;
        }
        for (let k = 0; k < o.n; k++) {
          this.record(o.d + k, i, Buffer.from(data.subarray(k * B, k * B + this.map.destBlockLength(o.d + k))));
          if (o.fua) {
            const list = this.fua.get(o.d + k) ?? [];
            list.push(i);
            this.fua.set(o.d + k, list);
          }
        }
        return;
      }
      case 'dstPart': {
        // What the block holds now, in the live run: the merged block is what it holds after (and what a FLUSH keeps).
        const merged = Buffer.alloc(this.map.destBlockLength(o.d));
        await e.destination.readInto(merged, o.d * B);
        const piece = patternBytes(o.length, o.seed);
        piece.copy(merged, o.at);
        try {
          await e.destination.write(o.d * B + o.at, piece, { fua: o.fua });
        } catch (err) {
          if (err instanceof NbdError && err.errno === Errno.ENOSPC) {
            this.enospc++;
            this.record(o.d, i, 'ANY');
            return;
          }
          throw err;
        }
        this.record(o.d, i, merged);
        this.partial++;
        if (o.fua) this.fua.set(o.d, [...(this.fua.get(o.d) ?? []), i]);
        return;
      }
      case 'dstZero': {
        const len = (o.n - 1) * B + this.map.destBlockLength(o.d + o.n - 1);
        await e.destination.writeZeroes(o.d * B, len, { fua: false, fast: false, mayTrim: false });
        for (let k = 0; k < o.n; k++) this.record(o.d + k, i, Buffer.alloc(this.map.destBlockLength(o.d + k)));
        return;
      }
      case 'dstTrim': {
        const len = (o.n - 1) * B + this.map.destBlockLength(o.d + o.n - 1);
        await e.destination.trim(o.d * B, len, { fua: false });
        for (let k = 0; k < o.n; k++) this.record(o.d + k, i, 'TRIM');
        return;
      }
      case 'flush':
        await e.destination.flush();
        this.flushes.push(i);
        return;
      case 'checkpoint':
        await e.checkpoint();
        this.checkpoints.push(i);
        this.flushes.push(i);
        return;
      case 'finish':
        this.finishAt = i;
        await e.finish();
        return;
    }
  }

  /** The values destination block d may read after a crash during operation k (undefined: anything). */
  allowed(d: number, k: number): Buffer[] | undefined {
    const list = this.hist.get(d) ?? [];
    let point = -1;
    for (const f of this.flushes) if (f < k) point = Math.max(point, f);
    for (const f of this.fua.get(d) ?? []) if (f < k) point = Math.max(point, f);
    const zero = Buffer.alloc(this.map.destBlockLength(d));
    let base: Value[] = ['ANY'];
    for (const h of list) {
      if (h.op > point) break;
      base = h.v === 'TRIM' ? [...base, zero] : [h.v];
    }
    const out = [...base];
    for (const h of list) if (h.op > point && h.op <= k) out.push(h.v === 'TRIM' ? zero : h.v);
    if (out.some((v) => v === 'ANY')) return undefined;
    return out as Buffer[];
  }

  /** Every value destination block d was given by op k (undefined: some write's value is unknown). */
  private writtenBy(d: number, k: number): Buffer[] | undefined {
    const out: Buffer[] = [];
    for (const h of this.hist.get(d) ?? []) {
      if (h.op > k) break;
      if (h.v === 'ANY') return undefined;
      out.push(h.v === 'TRIM' ? Buffer.alloc(this.map.destBlockLength(d)) : h.v);
    }
    return out;
  }

  private releasedBy(p: number, k: number): boolean {
    if (k >= this.finishAt || (k >= this.sealAt && this.free.has(p))) return true;
    const at = this.releasedAt.get(p);
    return at !== undefined && at <= k;
  }

  private confirmedBy(p: number, k: number): boolean {
    if (k >= this.finishAt || (k >= this.sealAt && this.free.has(p))) return true;
    const at = this.releasedAt.get(p);
    if (at === undefined) return false;
    return this.checkpoints.some((c) => c > at && c <= k);
  }

  /**
   * Recovers the crash state `point` (keeping what `mode` picks of the pending
   * writes) and checks it. `finish`: also run finish and check G6. Returns
   * the recovered phase.
   */
  async check(point: CrashPoint, mode: CrashMode, random: () => number, finish: boolean): Promise<string> {
    const { image, fs } = materialise(point.snap, mode, random);
    const disk = new CrashDisk(image);
    const where = `crash during op ${point.op} (${mode})`;
    let m: OpenedMigration;
    try {
      m = await openMigration({
        disk,
        diskPath: 'disk.img',
        statePath: STATE_PATH,
        map: this.map,
        cacheBytes: this.scenario.cacheBlocks * this.B,
        revisitCacheBytes: this.scenario.revisitBlocks * this.B,
        safe: this.scenario.safe,
        log: silent,
        fs,
        compactBytes: this.scenario.compactBytes,
        backgroundCommitRecords: backgroundCommitRecordsOf(this.scenario),
        keptEdgeBytes: keptEdgeBlocksOf(this.scenario) * this.B,
      });
    } catch (err) {
      throw new Error(`${where}: recovery failed: ${(err as Error).message}`, { cause: err });
    }
    const e = m.engine;
    const k = point.op;
    const phase = e.phase;
    if (phase === 'unsealed') {
      if (k > this.sealAt) {
        // A completed seal must survive.
        throw new Error(`${where}: recovered unsealed after the seal completed (op ${this.sealAt})`);
      }
      await m.close();
      return phase;
    }
    const B = this.B;
    const D = this.map.destinationBlocks;
    const served: Buffer[] = [];
    for (let d = 0; d < D; d++) {
      const buf = Buffer.alloc(this.map.destBlockLength(d));
      await e.destination.readInto(buf, d * B);
      served.push(buf);
      const allowed = this.allowed(d, k);
      if (allowed !== undefined && !sectorsFrom(buf, allowed)) {
        throw new Error(`${where}: G3/G5: destination block ${d} reads data that was never written there since its last FLUSH (${allowed.length} value(s) allowed)`);
      }
    }
    // What recovery made of each block is what x-nbd-remapper:written says: a clear flag is the one licence to read a home's content.
    const written = await writtenBlocks(e.destination, 0, this.map.destinationSize, B);
    for (let d = 0; d < D && phase !== 'finished'; d++) {
      if (written.get(d) !== true) {
        if (this.allowed(d, k) !== undefined) throw new Error(`${where}: x-nbd-remapper:written reports destination block ${d} as never written, yet a write to it was made durable`);
        continue;
      }
      const ever = this.writtenBy(d, k);
      if (ever !== undefined && !sectorsFrom(served[d], ever)) {
        throw new Error(`${where}: x-nbd-remapper:written reports destination block ${d} as written, yet it reads data never written to it`);
      }
    }
    const original = this.original as Buffer;
    if (phase !== 'finished') {
      let unconfirmedLost = 0;
      for (let p = 0; p < this.map.diskBlocks; p++) {
        const len = this.map.diskBlockLength(p);
        const buf = Buffer.alloc(len);
        try {
          await e.source.readInto(buf, p * B);
        } catch (err) {
          if (!(err instanceof NbdError) || err.errno !== Errno.EIO) throw err;
          if (!this.releasedBy(p, k)) throw new Error(`${where}: G1: source block ${p} is lost (EIO) although it was never released`);
          if (!this.confirmedBy(p, k)) {
            if (this.scenario.safe) throw new Error(`${where}: G5 --safe: the unconfirmed original of source block ${p} was destroyed`);
            unconfirmedLost++;
          }
          continue;
        }
        if (!buf.equals(original.subarray(p * B, p * B + len))) throw new Error(`${where}: G2: source block ${p} returns data that is not its original`);
      }
      const atRisk = e.status().atRisk;
      if (unconfirmedLost > atRisk) throw new Error(`${where}: G5: ${unconfirmedLost} unconfirmed original(s) lost, but status counts ${atRisk} at risk`);
    }
    if (finish || phase === 'finished') {
      await e.finish();
      for (let d = 0; d < D; d++) {
        const home = this.map.homeOf(d);
        const len = this.map.destBlockLength(d);
        if (!disk.bytes.subarray(home * B, home * B + len).equals(served[d])) throw new Error(`${where}: G6: after the resumed finish, disk block ${home} differs from what destination block ${d} served`);
        const buf = Buffer.alloc(len);
        await e.destination.readInto(buf, d * B);
        if (!buf.equals(served[d])) throw new Error(`${where}: G6: destination block ${d} changed through finish`);
      }
    }
    // The disk's kept edges: a block there that is nobody's home and was never declared free keeps its original, crash or not.
    const edge = keptEdgeBlocksOf(this.scenario);
    for (let p = 0; p < this.map.diskBlocks; p++) {
      if ((p >= edge && p < this.map.diskBlocks - edge) || this.map.isHome(p) || this.free.has(p)) continue;
      const len = this.map.diskBlockLength(p);
      if (!disk.bytes.subarray(p * B, p * B + len).equals(original.subarray(p * B, p * B + len))) {
        throw new Error(`${where}: disk block ${p}, at the disk's kept edge, nobody's home and never declared free, was written`);
      }
    }
    await m.close();
    return phase;
  }
}

/** Every sector of `data` equals that sector of one of `values` (a crash may tear an unflushed overwrite at sector boundaries). */
export function sectorsFrom(data: Buffer, values: Buffer[]): boolean {
  for (let at = 0; at < data.length; at += SECTOR) {
    const end = Math.min(data.length, at + SECTOR);
    const piece = data.subarray(at, end);
    if (!values.some((v) => v.subarray(at, end).equals(piece))) return false;
  }
  return true;
}

export function scenarioFrom(random: () => number): CrashScenario {
  const int = (n: number): number => Math.floor(random() * n);
  const blockSize = random() < 0.7 ? 512 : 4096;
  return {
    blockSize,
    fullBlocks: 4 + int(13),
    tail: random() < 0.25 ? 1 + int(511) : 0,
    mapKind: (['identity', 'shift', 'permutation', 'partial'] as const)[int(4)],
    cacheBlocks: 1 + int(4),
    revisitBlocks: int(3),
    safe: random() < 0.35,
    seed: int(2 ** 31),
    compactBytes: random() < 0.5 ? 600 + int(3000) : 1 << 30,
  };
}

export { prng };
