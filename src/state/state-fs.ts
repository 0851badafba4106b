import { constants } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { flockAsync } from '../store/flock.js';
import { writevFully } from '../store/positional-io.js';
import { StateInUseError, stateAccessError } from './state-errors.js';

/**
 * The few file operations the state journal needs. Production uses the real
 * file system (`nodeStateFs`); the power-loss tests inject a model that
 * remembers every write since the last sync and can forget any of them.
 */
export interface StateFile {
  /** Reads up to buffer.length bytes at `position`; returns how many were read. */
  read(buffer: Buffer, position: number): Promise<number>;
  /** Writes all of `data` at `position`. */
  write(data: Buffer, position: number): Promise<void>;
  /** Writes all of `parts` back to back from `position` (pwritev): frames go out from the memory they sit in, uncopied. */
  writev(parts: readonly Buffer[], position: number): Promise<void>;
  /** fdatasync: every completed write (and the size) is durable. */
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface StateFs {
  /** Opens an existing file; undefined when it does not exist. */
  openExisting(path: string, writable: boolean): Promise<StateFile | undefined>;
  /** Creates (or empties) a file for writing. */
  create(path: string): Promise<StateFile>;
  /** Atomic replace. */
  rename(from: string, to: string): Promise<void>;
  /** Removes a file; no error when it does not exist. */
  remove(path: string): Promise<void>;
  /** Makes the directory's entries (creations, renames) durable. */
  syncDir(path: string): Promise<void>;
  /** True when `path` names the file `file` is open on (it may have been removed or replaced since it was opened). */
  isFileAt(path: string, file: StateFile): Promise<boolean>;
  /** The device number of the file system `path`'s directory is on now (a mount over it changes it); undefined when it is missing. */
  directoryDevice(path: string): Promise<number | undefined>;
  /**
   * Keeps every other process off the state at `path` until released: two
   * servers appending to one state would interleave their records. Throws
   * StateInUseError when another process holds it.
   */
  lock(path: string): Promise<StateLock>;
}

export interface StateLock {
  release(): Promise<void>;
}

/**
 * The lock lives on a sibling file, not on the state file itself: compaction
 * replaces the state file by rename, and a flock stays with the old inode.
 * The lock file is never removed — removing it would let a process that
 * opened the old one and one that creates a new one both hold "the" lock.
 */
export function lockPathOf(statePath: string): string {
  return `${statePath}.lock`;
}

class NodeStateFile implements StateFile {
  constructor(readonly handle: FileHandle) {}

  async read(buffer: Buffer, position: number): Promise<number> {
    let done = 0;
    while (done < buffer.length) {
      const { bytesRead } = await this.handle.read(buffer, done, buffer.length - done, position + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
    return done;
  }

  async write(data: Buffer, position: number): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await this.handle.write(data, done, data.length - done, position + done);
      done += bytesWritten;
    }
  }

  async writev(parts: readonly Buffer[], position: number): Promise<void> {
    await writevFully(async (buffers, at) => (await this.handle.writev(buffers as Buffer[], at)).bytesWritten, parts, position);
  }

  datasync(): Promise<void> {
    return this.handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

async function lockState(statePath: string): Promise<StateLock> {
  const path = lockPathOf(statePath);
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDWR | constants.O_CREAT, 0o600);
  } catch (err) {
    // The first touch of the state's directory: say what is wrong with it.
    throw stateAccessError(statePath, path, err) ?? err;
  }
  try {
    await flockAsync(handle.fd, 'exnb');
  } catch (err) {
    await handle.close().catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAGAIN' || code === 'EWOULDBLOCK') throw new StateInUseError(statePath, path, { cause: err });
    throw err;
  }
  let released = false;
  return {
    async release() {
      if (released) return;
      released = true;
      // Closing the only descriptor drops the lock anyway; unlocking first says it outright.
      await flockAsync(handle.fd, 'un').catch(() => undefined);
      await handle.close();
    },
  };
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

export const nodeStateFs: StateFs = {
  async openExisting(path, writable) {
    try {
      return new NodeStateFile(await open(path, writable ? constants.O_RDWR : constants.O_RDONLY));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  },
  async create(path) {
    return new NodeStateFile(await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC, 0o600));
  },
  rename: (from, to) => rename(from, to),
  async remove(path) {
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  },
  async isFileAt(path, file) {
    if (!(file instanceof NodeStateFile)) return false;
    const [named, open] = await Promise.all([stat(path).catch((err: unknown) => (isMissing(err) ? undefined : Promise.reject(err))), file.handle.stat()]);
    return named !== undefined && named.dev === open.dev && named.ino === open.ino;
  },
  async directoryDevice(path) {
    try {
      return (await stat(dirname(path))).dev;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  },
  async syncDir(path) {
    const dir = await open(dirname(path), constants.O_RDONLY);
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  },
  lock: lockState,
};
