import type { BlockDevice } from '../../../../../src/remap/block-device.js';
import type { StateFile, StateFs, StateLock } from '../../../../../src/state/state-fs.js';

/**
 * A power-loss model of one disk and one directory of state files
 * (CrashMonkey/ALICE style). Every write since the last sync of its file or
 * device is pending; a crash keeps any subset of the pending writes, at the
 * granularity of 512-byte sectors, and any prefix of the pending directory
 * operations (create, rename, unlink: durable only after a directory sync).
 *
 * Each I/O first calls `onEvent` — a crash point: the test takes a
 * `snapshot()` there, and later `materialise`s it into a fresh world.
 */
export const SECTOR = 512;

interface PendingWrite {
  kind: 'write';
  offset: number;
  data: Buffer;
}
interface PendingTruncate {
  kind: 'truncate';
  length: number;
}
type PendingFileOp = PendingWrite | PendingTruncate;
type DirOp = { kind: 'link'; name: string; inode: number } | { kind: 'unlink'; name: string } | { kind: 'rename'; from: string; to: string };

export type EventKind = 'disk-write' | 'disk-sync' | 'file-write' | 'file-sync' | 'file-truncate' | 'dir-op' | 'dir-sync';

export interface Recorder {
  onEvent(kind: EventKind): void;
}

const noRecorder: Recorder = { onEvent() {} };

function applyWrite(target: Buffer, offset: number, data: Buffer): Buffer {
  const end = offset + data.length;
  if (end > target.length) {
    const grown = Buffer.alloc(end);
    target.copy(grown);
    target = grown;
  }
  data.copy(target, offset);
  return target;
}

export class CrashDisk implements BlockDevice {
  private current: Buffer;
  /** Never mutated: replaced at every sync, so snapshots share it. */
  private durable: Buffer;
  private pending: PendingWrite[] = [];
  writes = 0;
  syncs = 0;
  /** Test hook: runs before each write takes effect (ordering-rule checks). */
  beforeWrite: ((offset: number, length: number) => void) | undefined;
  beforeSync: (() => void) | undefined;
  /** Test hook: a sync that does nothing (to show a test catches it). */
  brokenSync = false;
  /** Asked at every write: true makes it find the image's file system full (ENOSPC after storing part of it). */
  isFull: (() => boolean) | undefined;

  constructor(
    image: Buffer,
    private readonly recorder: Recorder = noRecorder,
  ) {
    this.current = Buffer.from(image);
    this.durable = Buffer.from(image);
  }

  get size(): number {
    return this.current.length;
  }

  /** The bytes reads see now (tests compare against it). */
  get bytes(): Buffer {
    return this.current;
  }

  /** Pending (unsynced) writes touching [offset, offset+length). */
  pendingOverlapping(offset: number, length: number): boolean {
    return this.pending.some((w) => w.offset < offset + length && offset < w.offset + w.data.length);
  }

  async readInto(buffer: Buffer, offset: number): Promise<void> {
    this.check(offset, buffer.length);
    this.current.copy(buffer, 0, offset, offset + buffer.length);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    this.check(offset, data.length);
    this.recorder.onEvent('disk-write');
    this.beforeWrite?.(offset, data.length);
    // An image whose file system is full takes what fits (here: a whole number of sectors, maybe none), then fails.
    const full = this.isFull?.() ?? false;
    const stored = full ? data.subarray(0, Math.floor(data.length / SECTOR / 2) * SECTOR) : data;
    stored.copy(this.current, offset);
    this.pending.push({ kind: 'write', offset, data: Buffer.from(stored) });
    this.writes++;
    if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  }

  async sync(): Promise<void> {
    this.recorder.onEvent('disk-sync');
    this.beforeSync?.();
    if (this.brokenSync) return;
    this.durable = Buffer.from(this.current);
    this.pending = [];
    this.syncs++;
  }

  snapshot(): DiskSnapshot {
    return { durable: this.durable, pending: this.pending.slice() };
  }

  private check(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.current.length) throw new RangeError(`disk I/O outside the disk: ${offset}+${length}`);
  }
}

export interface DiskSnapshot {
  durable: Buffer;
  pending: PendingWrite[];
}

interface Inode {
  current: Buffer;
  durable: Buffer;
  pending: PendingFileOp[];
}

export interface FsSnapshot {
  inodes: Map<number, { durable: Buffer; pending: PendingFileOp[] }>;
  names: Map<string, number>;
  dirOps: DirOp[];
}

class CrashFile implements StateFile {
  closed = false;
  constructor(
    private readonly fs: CrashFs,
    readonly inode: Inode,
    private readonly writable: boolean,
  ) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    this.live();
    const n = Math.max(0, Math.min(buffer.length, this.inode.current.length - position));
    this.inode.current.copy(buffer, 0, position, position + n);
    return n;
  }

  async write(data: Buffer, position: number): Promise<void> {
    this.live();
    if (!this.writable) throw new Error('EBADF: file opened read-only');
    this.fs.event('file-write');
    this.fs.beforeFileWrite?.(data, position);
    // A full file system takes what fits (here: half), then fails the write.
    const full = this.fs.isFull?.() ?? false;
    const stored = full ? data.subarray(0, data.length >> 1) : data;
    this.inode.current = applyWrite(this.inode.current, position, stored);
    this.inode.pending.push({ kind: 'write', offset: position, data: Buffer.from(stored) });
    if (full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
  }

  /** One write op, as a pwritev is one syscall: the power-loss model keeps or drops it like a pwrite. */
  writev(parts: readonly Buffer[], position: number): Promise<void> {
    return this.write(Buffer.concat(parts), position);
  }

  async datasync(): Promise<void> {
    this.live();
    this.fs.event('file-sync');
    if (this.fs.brokenDatasync) return;
    this.inode.durable = Buffer.from(this.inode.current);
    this.inode.pending = [];
  }

  async truncate(length: number): Promise<void> {
    this.live();
    this.fs.event('file-truncate');
    const next = Buffer.alloc(length);
    this.inode.current.copy(next, 0, 0, Math.min(length, this.inode.current.length));
    this.inode.current = next;
    this.inode.pending.push({ kind: 'truncate', length });
  }

  async size(): Promise<number> {
    this.live();
    return this.inode.current.length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private live(): void {
    if (this.closed) throw new Error('EBADF: file is closed');
  }
}

export class CrashFs implements StateFs {
  private nextInode = 1;
  private readonly inodes = new Map<number, Inode>();
  private names = new Map<string, number>();
  /** Never mutated: replaced at every directory sync. */
  private durableNames = new Map<string, number>();
  private dirOps: DirOp[] = [];
  /** Test hooks: a no-op datasync (to show a test catches it), and a look at every write. */
  brokenDatasync = false;
  beforeFileWrite: ((data: Buffer, position: number) => void) | undefined;
  /** Asked at every file write: true makes it find the file system full (ENOSPC after storing part of it). */
  isFull: (() => boolean) | undefined;

  constructor(private readonly recorder: Recorder = noRecorder) {}

  event(kind: EventKind): void {
    this.recorder.onEvent(kind);
  }

  /** A file's current bytes (what reads see), or undefined. */
  contents(path: string): Buffer | undefined {
    const id = this.names.get(path);
    return id === undefined ? undefined : this.inodes.get(id)?.current;
  }

  /** Replaces a file's bytes durably (corruption tests). */
  setContents(path: string, data: Buffer): void {
    let id = this.names.get(path);
    if (id === undefined) {
      id = this.nextInode++;
      this.names.set(path, id);
      this.durableNames = new Map(this.names);
    }
    this.inodes.set(id, { current: Buffer.from(data), durable: Buffer.from(data), pending: [] });
  }

  /** What a crash that keeps no pending write would leave of a file. */
  durableContents(path: string): Buffer | undefined {
    const id = this.durableNames.get(path);
    return id === undefined ? undefined : this.inodes.get(id)?.durable;
  }

  listNames(): string[] {
    return [...this.names.keys()];
  }

  async openExisting(path: string, writable: boolean): Promise<StateFile | undefined> {
    const id = this.names.get(path);
    if (id === undefined) return undefined;
    return new CrashFile(this, this.inodes.get(id) as Inode, writable);
  }

  async create(path: string): Promise<StateFile> {
    const existing = this.names.get(path);
    if (existing !== undefined) {
      const file = new CrashFile(this, this.inodes.get(existing) as Inode, true);
      await file.truncate(0);
      return file;
    }
    this.event('dir-op');
    const id = this.nextInode++;
    const inode: Inode = { current: Buffer.alloc(0), durable: Buffer.alloc(0), pending: [] };
    this.inodes.set(id, inode);
    this.names.set(path, id);
    this.dirOps.push({ kind: 'link', name: path, inode: id });
    return new CrashFile(this, inode, true);
  }

  async rename(from: string, to: string): Promise<void> {
    const id = this.names.get(from);
    if (id === undefined) throw new Error(`ENOENT: ${from}`);
    this.event('dir-op');
    this.names.delete(from);
    this.names.set(to, id);
    this.dirOps.push({ kind: 'rename', from, to });
  }

  async remove(path: string): Promise<void> {
    if (!this.names.has(path)) return;
    this.event('dir-op');
    this.names.delete(path);
    this.dirOps.push({ kind: 'unlink', name: path });
  }

  async isFileAt(path: string, file: StateFile): Promise<boolean> {
    const id = this.names.get(path);
    return id !== undefined && file instanceof CrashFile && file.inode === this.inodes.get(id);
  }

  /** The model has one directory on one device, never mounted over. */
  async directoryDevice(): Promise<number> {
    return 1;
  }

  async syncDir(): Promise<void> {
    this.event('dir-sync');
    this.durableNames = new Map(this.names);
    this.dirOps = [];
  }

  /** Locks belong to processes, which power loss ends: nothing to model (the real flock is tested in state-lock.test.ts). */
  async lock(): Promise<StateLock> {
    return { release: async () => undefined };
  }

  snapshot(): FsSnapshot {
    const inodes = new Map<number, { durable: Buffer; pending: PendingFileOp[] }>();
    for (const [id, inode] of this.inodes) inodes.set(id, { durable: inode.durable, pending: inode.pending.slice() });
    return { inodes, names: this.durableNames, dirOps: this.dirOps.slice() };
  }

  /** A world after power loss: durable names + a prefix of the directory operations, files as `content` says. */
  static fromCrash(names: Map<string, number>, content: Map<number, Buffer>, recorder?: Recorder): CrashFs {
    const fs = new CrashFs(recorder);
    let max = 0;
    for (const [id, data] of content) {
      fs.inodes.set(id, { current: Buffer.from(data), durable: Buffer.from(data), pending: [] });
      max = Math.max(max, id);
    }
    fs.nextInode = max + 1;
    for (const [name, id] of names) if (fs.inodes.has(id)) fs.names.set(name, id);
    fs.durableNames = new Map(fs.names);
    return fs;
  }
}

/** How much of the pending writes a crash keeps. */
export type CrashMode = 'none' | 'all' | 'prefix' | 'random';

export interface CrashSnapshot {
  disk: DiskSnapshot;
  fs: FsSnapshot;
}

interface Piece {
  apply(target: Buffer): Buffer;
}

/** A pending write cut into sector pieces; a truncate is one piece. */
function piecesOf(op: PendingFileOp): Piece[] {
  if (op.kind === 'truncate') {
    return [
      {
        apply: (t) => {
          const next = Buffer.alloc(op.length);
          t.copy(next, 0, 0, Math.min(op.length, t.length));
          return next;
        },
      },
    ];
  }
  const out: Piece[] = [];
  const end = op.offset + op.data.length;
  for (let at = op.offset; at < end; ) {
    const next = Math.min(end, (Math.floor(at / SECTOR) + 1) * SECTOR);
    const slice = op.data.subarray(at - op.offset, next - op.offset);
    const position = at;
    out.push({ apply: (t) => applyWrite(t, position, slice) });
    at = next;
  }
  return out;
}

/**
 * The world a power loss at `snap` leaves, keeping the pending pieces `mode`
 * picks (`random` uses `random()`): a disk image and a file system.
 */
export function materialise(snap: CrashSnapshot, mode: CrashMode, random: () => number, recorder?: Recorder): { image: Buffer; fs: CrashFs } {
  const diskPieces = snap.disk.pending.flatMap(piecesOf);
  const filePieces: Array<{ inode: number; piece: Piece; extendTo?: number }> = [];
  for (const [id, inode] of snap.fs.inodes) {
    for (const op of inode.pending) {
      const pieces = piecesOf(op);
      // A crash may also keep an extended size without the data (zeroes there).
      const extendTo = op.kind === 'write' ? op.offset + op.data.length : undefined;
      pieces.forEach((piece, i) => filePieces.push({ inode: id, piece, extendTo: i === pieces.length - 1 ? extendTo : undefined }));
    }
  }
  const total = diskPieces.length + filePieces.length + snap.fs.dirOps.length;
  const cut = mode === 'prefix' ? Math.floor(random() * (total + 1)) : 0;
  let index = 0;
  const keep = (): boolean => {
    const i = index++;
    if (mode === 'none') return false;
    if (mode === 'all') return true;
    if (mode === 'prefix') return i < cut;
    return random() < 0.5;
  };
  let image: Buffer = Buffer.from(snap.disk.durable);
  for (const p of diskPieces) if (keep()) image = p.apply(image);
  const content = new Map<number, Buffer>();
  for (const [id, inode] of snap.fs.inodes) content.set(id, Buffer.from(inode.durable));
  for (const f of filePieces) {
    if (keep()) content.set(f.inode, f.piece.apply(content.get(f.inode) as Buffer));
    else if (f.extendTo !== undefined && mode === 'random' && random() < 0.3) {
      const data = content.get(f.inode) as Buffer;
      if (f.extendTo > data.length) content.set(f.inode, Buffer.concat([data, Buffer.alloc(f.extendTo - data.length)]));
    }
  }
  const names = new Map(snap.fs.names);
  // Directory operations stay in order (the file system journals its metadata): always a prefix.
  const dirOps = snap.fs.dirOps;
  let kept = 0;
  if (mode === 'all') kept = dirOps.length;
  else if (mode === 'prefix') kept = Math.max(0, Math.min(dirOps.length, cut - (diskPieces.length + filePieces.length)));
  else if (mode === 'random') kept = Math.floor(random() * (dirOps.length + 1));
  for (const op of dirOps.slice(0, kept)) {
    if (op.kind === 'link') names.set(op.name, op.inode);
    else if (op.kind === 'unlink') names.delete(op.name);
    else {
      const id = names.get(op.from);
      names.delete(op.from);
      if (id !== undefined) names.set(op.to, id);
    }
  }
  // The disk keeps its size whatever happened (writes never extend it).
  if (image.length !== snap.disk.durable.length) image = image.subarray(0, snap.disk.durable.length);
  return { image, fs: CrashFs.fromCrash(names, content, recorder) };
}
