import { open, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ManifestError } from './digest-manifest.js';

/** Why a record file cannot be read or written, and what to do, as a ManifestError (a user error, not a crash). */
function recordFileError(path: string, err: unknown, reading: boolean): ManifestError | unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const what = reading ? `cannot read the record ${path}` : `cannot write the record ${path}`;
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return reading
        ? new ManifestError(`${what}: there is no such file (${code})`, 'pass the file that `verify --record` wrote before finish')
        : new ManifestError(`${what}: the directory ${dirname(path)} does not exist (${code})`, `create it (mkdir -p ${dirname(path)}) or record into an existing directory`);
    case 'EISDIR':
      return new ManifestError(`${what}: it is a directory (${code})`, `name a file, e.g. ${path.replace(/\/+$/, '')}/destination.sha256`);
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new ManifestError(`${what}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'} (${code})`, reading ? 'run as a user who may read it' : 'record into a directory you can write');
    default:
      return err;
  }
}

export async function readRecord(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw recordFileError(path, err, true);
  }
}

/**
 * A record being written: opened before the export is read — a path that
 * cannot be written fails at once, not after hours of reading — as a
 * `.partial` file beside the record, renamed into place only when complete.
 */
export class RecordWriter {
  private constructor(
    readonly path: string,
    private readonly partial: string,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<RecordWriter> {
    const partial = `${dirname(path)}/.${basename(path)}.partial`;
    try {
      // The record's own path must not be a directory either: checked now, not at the rename.
      const existing = await stat(path).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
      if (existing?.isDirectory() === true) throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
      return new RecordWriter(path, partial, await open(partial, 'w'));
    } catch (err) {
      throw recordFileError(path, err, false);
    }
  }

  async commit(content: string): Promise<void> {
    try {
      await this.handle.writeFile(content);
      await this.handle.sync();
      await this.handle.close();
      await rename(this.partial, this.path);
    } catch (err) {
      await this.abandon();
      throw recordFileError(this.path, err, false);
    }
  }

  async abandon(): Promise<void> {
    await this.handle.close().catch(() => undefined);
    await unlink(this.partial).catch(() => undefined);
  }
}
