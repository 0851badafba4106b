import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseStateFile } from '../state/file-state-journal.js';
import { StateError } from '../state/state-errors.js';
import { shellQuote } from '../format/shell-quote.js';

/** One migration's entry: which state file holds the migration of which disk. */
interface Entry {
  statePath: string;
  diskKey: string;
  diskPath: string;
  createdAt: string;
}

/** An unfinished migration of the disk whose state lives elsewhere, as the refusal names it. */
export interface UnfinishedMigration {
  statePath: string;
  diskPath: string;
  createdAt?: string;
  /** The phase the state file records, or why it could not be read. */
  phase: string;
}

/**
 * Where the migrations this machine's user started are listed (one small
 * JSON file each): `$NBD_REMAPPER_REGISTRY`, else /var/lib/nbd-remapper/migrations
 * as root, else `$XDG_STATE_HOME/nbd-remapper/migrations`.
 */
export function registryDirectory(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NBD_REMAPPER_REGISTRY !== undefined && env.NBD_REMAPPER_REGISTRY !== '') return env.NBD_REMAPPER_REGISTRY;
  if (process.getuid?.() === 0) return '/var/lib/nbd-remapper/migrations';
  return join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'nbd-remapper', 'migrations');
}

/**
 * The migrations started on this machine and not finished, by disk: so that
 * `serve` with a forgotten or mistyped --state does not start a second
 * migration over a disk whose blocks are partly moved (it would serve them
 * as the old layout). A state file of an older version, or one registered
 * nowhere, is still found at the disk's default path. Best effort: the
 * registry is a guard, never needed to resume.
 */
export class MigrationRegistry {
  constructor(readonly directory: string = registryDirectory()) {}

  private entryPath(statePath: string): string {
    return join(this.directory, `${createHash('sha256').update(resolve(statePath)).digest('hex').slice(0, 32)}.json`);
  }

  /**
   * Unfinished migrations of `diskKey` whose state is not `statePath`;
   * `defaultStatePath` (an image's) is looked at too. `diskBornAt`: when the
   * image file was created; an entry listed before that belongs to an
   * earlier file whose inode was reused, and is dropped.
   */
  async unfinishedElsewhere(diskKey: string, statePath: string, defaultStatePath?: string, diskBornAt?: number): Promise<UnfinishedMigration[]> {
    const found = new Map<string, UnfinishedMigration>();
    const self = resolve(statePath);
    for (const entry of await this.entries()) {
      if (entry.diskKey !== diskKey || resolve(entry.statePath) === self) continue;
      // Whole milliseconds, as createdAt has them: an entry of the same millisecond as the file is not older.
      if (diskBornAt !== undefined && Date.parse(entry.createdAt) < Math.floor(diskBornAt)) {
        // Listed before this file existed: the migration of a deleted image whose inode the file system gave this one.
        await unlink(this.entryPath(entry.statePath)).catch(() => undefined);
        continue;
      }
      const phase = await phaseOf(entry.statePath);
      if (phase === undefined) {
        // Its state file is gone: the migration was given up (or the file moved; then its owner passes --state).
        await unlink(this.entryPath(entry.statePath)).catch(() => undefined);
        continue;
      }
      if (phase !== 'finished') found.set(resolve(entry.statePath), { statePath: entry.statePath, diskPath: entry.diskPath, createdAt: entry.createdAt, phase });
    }
    if (defaultStatePath !== undefined && resolve(defaultStatePath) !== self && !found.has(resolve(defaultStatePath))) {
      const phase = await phaseOf(defaultStatePath);
      if (phase !== undefined && phase !== 'finished') found.set(resolve(defaultStatePath), { statePath: defaultStatePath, diskPath: '', phase });
    }
    return [...found.values()];
  }

  /** Lists a new migration. */
  async record(statePath: string, diskKey: string, diskPath: string): Promise<void> {
    await mkdir(this.directory, { recursive: true, mode: 0o700 });
    const path = this.entryPath(statePath);
    const entry: Entry = { statePath: resolve(statePath), diskKey, diskPath, createdAt: new Date().toISOString() };
    await writeFile(`${path}.tmp`, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }

  /** The migration finished: nothing to guard any more. */
  async forget(statePath: string): Promise<void> {
    await unlink(this.entryPath(statePath)).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  }

  private async entries(): Promise<Entry[]> {
    const names = await readdir(this.directory).catch(() => [] as string[]);
    const out: Entry[] = [];
    for (const name of names) {
      if (!name.endsWith('.json')) continue;
      try {
        const e = JSON.parse(await readFile(join(this.directory, name), 'utf8')) as Partial<Entry>;
        if (typeof e.statePath === 'string' && typeof e.diskKey === 'string') out.push({ statePath: e.statePath, diskKey: e.diskKey, diskPath: String(e.diskPath ?? ''), createdAt: String(e.createdAt ?? '') });
      } catch {
        // Not ours, or half written by a crash: skipped.
      }
    }
    return out;
  }
}

/** The registry as `serve` uses it for one disk. */
export class DiskMigrations {
  constructor(
    private readonly registry: MigrationRegistry,
    private readonly diskPath: string,
    private readonly diskKey: string,
    /** An image's DISK.remap-state; none for a block device. */
    private readonly defaultStatePath: string | undefined,
    /** When the image file was created (diskIdentity's bornAt), if known. */
    private readonly diskBornAt?: number,
  ) {}

  get directory(): string {
    return this.registry.directory;
  }

  /** Unfinished migrations of this disk other than the one in `ownState` (none: every one). */
  unfinished(ownState?: string): Promise<UnfinishedMigration[]> {
    return this.registry.unfinishedElsewhere(this.diskKey, ownState ?? '', this.defaultStatePath, this.diskBornAt);
  }

  /** A new migration in `statePath` is about to begin: refused while another of this disk is unfinished. */
  async refuseNewIfUnfinished(statePath: string): Promise<void> {
    const others = await this.unfinished(statePath);
    if (others.length === 0) return;
    throw new StateError(
      `${this.diskPath} has an unfinished migration (${others.map(describeMigration).join('; ')}): a new one would take its partly moved blocks for the old layout`,
      `to go on with it, pass --state ${shellQuote(others[0].statePath)}. Only if it is to be given up (never sealed, or the disk restored from a backup) remove that state file, then start again`,
    );
  }

  record(statePath: string): Promise<void> {
    return this.registry.record(statePath, this.diskKey, this.diskPath);
  }

  forget(statePath: string): Promise<void> {
    return this.registry.forget(statePath);
  }
}

export function describeMigration(m: UnfinishedMigration): string {
  return `state ${m.statePath}, phase ${m.phase}${m.createdAt ? `, started ${m.createdAt}` : ''}`;
}

/** The phase a state file records; undefined when there is no such file; a description when it cannot be read. */
async function phaseOf(statePath: string): Promise<string | undefined> {
  let data: Buffer;
  try {
    data = await readFile(statePath);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return `unreadable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  try {
    return parseStateFile(statePath, data).state.phase;
  } catch (err) {
    return `unreadable (${(err as Error).message})`;
  }
}
