import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { ControlServer } from '../../control/control-server.js';
import { defaultControlPath } from '../../control/control-client.js';
import { formatBytes } from '../../format/bytes.js';
import { createLogger, type Logger } from '../../log/logger.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES, DEFAULT_REVISIT_CACHE_BYTES, RemapMap, validateBlockSize, type RemapEngine } from '../../remap/index.js';
import { openMigration, resolveStatePath, type OpenedMigration } from '../../state/index.js';
import { PlainDiskView } from '../../remap/plain-disk-view.js';
import type { BlockExport } from '../../server/block-export.js';
import { ExportList } from '../../server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer, type Endpoint } from '../../server/nbd-server.js';
import { Disk } from '../../store/disk.js';
import { DEFAULT_HOST, DEFAULT_PORT, nbdClientCommand, nbdUri, parseListen, unixEndpoint } from '../endpoints.js';
import { parseSize } from '../parse-size.js';
import { UserError } from '../user-error.js';

const MiB = 1024 * 1024;
const DISK_DESCRIPTION = 'The disk to serve: an image file or a block device (opened exclusively; a second server on it is refused)';

export interface ServeOptions {
  disk: string;
  listen?: string;
  socket?: string;
  readOnly: boolean;
  map?: string;
  blockSize: number;
  cache: string;
  revisitCache: string;
  control: string;
  state?: string;
  safe: boolean;
  maxConnections: number;
  handshakeTimeout: number;
  verbose: boolean;
}

export interface RunningServer {
  endpoints: Endpoint[];
  /** Answer requests in flight, make acknowledged data durable, close the disk. */
  stop(): Promise<void>;
}

/** The options of `serve`; `demo` shares them but brings its own disk (yargs cannot undo a demanded option). */
export function serveOptions<T>(yargs: Argv<T>, disk: { demand: boolean; describe: string } = { demand: true, describe: DISK_DESCRIPTION }) {
  return yargs
    .option('disk', { type: 'string', demandOption: disk.demand, describe: disk.describe })
    .option('map', {
      type: 'string',
      describe: 'JSON map of the new layout: {"extents":[{"destOffset","length","diskOffset"},…]} in bytes, destination order (default: identity, the destination is the whole disk). See README "Map files"',
    })
    .option('block-size', {
      type: 'number',
      default: DEFAULT_BLOCK_SIZE,
      describe: 'Unit of ordering B in bytes (power of two, 512…65536); map extents must be multiples of it',
    })
    .option('cache', {
      type: 'string',
      default: `${DEFAULT_CACHE_BYTES / MiB}M`,
      describe: 'RAM for destination data that cannot land yet (K/M/G); over it, data spills into already-read disk blocks',
    })
    .option('revisit-cache', {
      type: 'string',
      default: `${DEFAULT_REVISIT_CACHE_BYTES / MiB}M`,
      describe: 'RAM keeping originals of overwritten blocks, so a second read of an old block still returns the old data (0 disables)',
    })
    .option('control', {
      type: 'string',
      default: defaultControlPath(),
      describe: 'Unix socket of the control plane (seal, checkpoint, status, finish use the same default; env NBD_REMAPPER_CONTROL)',
    })
    .option('state', {
      type: 'string',
      describe:
        'Durable record of the migration (default: DISK.remap-state next to an image file; required for a block device, on another disk). Restarting with it resumes exactly where the migration was',
    })
    .option('safe', {
      type: 'boolean',
      default: false,
      describe: 'Never overwrite an original a checkpoint has not confirmed (a write that would need one fails with ENOSPC): re-running the copy from the last checkpoint always works',
    })
    .option('listen', {
      type: 'string',
      describe: `TCP address HOST:PORT (default ${DEFAULT_HOST}:${DEFAULT_PORT} unless only --socket is given; port 0 picks a free port)`,
    })
    .option('socket', { type: 'string', describe: 'Also (or only) listen on this unix socket path' })
    .option('read-only', {
      type: 'boolean',
      default: false,
      describe: 'Inspect only: export just "source", read-only, with no destination and no remapping',
    })
    .option('max-connections', { type: 'number', default: DEFAULT_SERVER_OPTIONS.maxConnections, describe: 'Clients served at once; more are refused' })
    .option('handshake-timeout', {
      type: 'number',
      default: DEFAULT_SERVER_OPTIONS.handshakeTimeoutMs / 1000,
      describe: 'Seconds a client may take to finish the NBD handshake before it is dropped',
    })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log every failed request and connection event' });
}

interface Sizes {
  cacheBytes: number;
  revisitCacheBytes: number;
}

function checkOptions(options: ServeOptions): Sizes {
  if (!Number.isInteger(options.maxConnections) || options.maxConnections < 1) {
    throw new UserError(`--max-connections ${options.maxConnections} must be a positive whole number`, 'e.g. --max-connections 16', 2);
  }
  if (!(options.handshakeTimeout > 0)) {
    throw new UserError(`--handshake-timeout ${options.handshakeTimeout} must be a positive number of seconds`, 'e.g. --handshake-timeout 10', 2);
  }
  validateBlockSize(options.blockSize);
  const cacheBytes = parseSize(options.cache, '--cache');
  if (cacheBytes < options.blockSize) {
    throw new UserError(
      `--cache ${options.cache} is smaller than one block (${options.blockSize} bytes)`,
      `give at least one block (finish needs it to break cycles); the default is ${formatBytes(DEFAULT_CACHE_BYTES)}`,
      2,
    );
  }
  return { cacheBytes, revisitCacheBytes: parseSize(options.revisitCache, '--revisit-cache') };
}

async function loadMap(path: string | undefined, disk: Disk, blockSize: number): Promise<RemapMap | undefined> {
  if (path === undefined) return undefined;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read the map file ${path}: ${code ?? (err as Error).message}`, 'check the path given to --map (a JSON file, see README "Map files")');
  }
  return RemapMap.parse(text, disk.size, blockSize);
}

function endpointsOf(options: ServeOptions): Endpoint[] {
  const endpoints: Endpoint[] = [];
  if (options.listen !== undefined || options.socket === undefined) endpoints.push(parseListen(options.listen ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`));
  if (options.socket !== undefined) endpoints.push(unixEndpoint(options.socket));
  return endpoints;
}

/** Opens the disk, builds the exports, starts listening and prints how to attach. */
export async function startServer(options: ServeOptions, print: (line: string) => void, log: Logger): Promise<RunningServer> {
  const endpoints = endpointsOf(options);
  const sizes = checkOptions(options);
  const disk = await Disk.open(options.disk, { readOnly: options.readOnly });
  const table = new ExportList();
  let migration: OpenedMigration | undefined;
  let statePath: string | undefined;
  let engine: RemapEngine | undefined;
  let control: ControlServer | undefined;
  const server = new NbdServer(
    table,
    { ...DEFAULT_SERVER_OPTIONS, maxConnections: options.maxConnections, handshakeTimeoutMs: options.handshakeTimeout * 1000 },
    log,
  );
  const bound: Endpoint[] = [];
  try {
    if (options.readOnly) {
      table.add(new PlainDiskView('source', `the disk ${disk.path} as it is (read-only)`, disk, true));
    } else {
      const map = await loadMap(options.map, disk, options.blockSize);
      statePath = resolve(resolveStatePath({ diskPath: disk.path, isBlockDevice: disk.isBlockDevice, statePath: options.state }));
      migration = await openMigration({ disk, diskPath: disk.path, statePath, map, blockSize: options.blockSize, ...sizes, safe: options.safe, log });
      engine = migration.engine;
      // A finished migration has no source any more: the disk is the new layout.
      if (engine.phase !== 'finished') table.add(engine.source);
      table.add(engine.destination);
      engine.onPhase((phase) => {
        if (phase === 'finished') table.remove('source');
      });
      control = new ControlServer(engine, log);
      await control.listen(options.control);
    }
    for (const endpoint of endpoints) bound.push(await server.listen(endpoint));
  } catch (err) {
    await server.close();
    await control?.close();
    await migration?.close();
    await disk.close();
    throw err;
  }

  const stateLine = migration ? `state: ${statePath} (${migration.resumed ? 'resumed' : 'new migration'})${options.safe ? '; safe mode' : ''}` : undefined;
  printBanner(print, disk, stateLine, engine, table.list(), bound, options);

  let stopping: Promise<void> | undefined;
  return {
    endpoints: bound,
    stop() {
      stopping ??= (async () => {
        await server.close();
        await control?.close();
        // Held data goes into the state first: a clean stop loses nothing.
        await migration?.close();
        await disk.sync();
        await disk.close();
      })();
      return stopping;
    },
  };
}

function printBanner(
  print: (line: string) => void,
  disk: Disk,
  stateLine: string | undefined,
  engine: RemapEngine | undefined,
  exports: readonly BlockExport[],
  bound: Endpoint[],
  options: ServeOptions,
): void {
  print(`nbd-remapper: serving ${disk.path} (${formatBytes(disk.size)}, ${disk.size} bytes)${options.readOnly ? ', read-only' : ''}`);
  if (engine) {
    const map = engine.map;
    if (stateLine) print(stateLine);
    print(
      `map: ${options.map ?? (isIdentity(map) ? 'identity' : 'as recorded in the state')} — ${map.extents.length} extent(s), destination ${formatBytes(map.destinationSize)}, block size ${map.blockSize}, cache ${options.cache}, revisit cache ${options.revisitCache}, phase ${engine.phase}`,
    );
  }
  exports.forEach((exp, i) => {
    print(`export '${exp.name}': ${exp.description}`);
    for (const endpoint of bound) print(`  ${nbdUri(endpoint, exp.name)}`);
    print(`  attach: ${nbdClientCommand(bound[0], exp.name, `/dev/nbd${i}`)}`);
  });
  if (engine) {
    print(`control: ${options.control}  (nbd-remapper status|seal|checkpoint|finish --control ${options.control})`);
    if (engine.phase === 'unsealed') print('next: mount the old filesystems from source, fstrim them, then `nbd-remapper seal`');
    if (engine.phase === 'finished') print('this migration is finished: destination is a plain view of the disk (remove the state file to start a new one)');
  }
  print('ready; Ctrl-C (SIGINT) or SIGTERM stops after answering requests in flight');
}

function isIdentity(map: RemapMap): boolean {
  const [only] = map.extents;
  return map.extents.length === 1 && only.diskOffset === 0 && only.length === map.diskSize;
}

/** Runs until SIGINT/SIGTERM, then stops cleanly and exits 0. */
export async function serveUntilSignalled(options: ServeOptions): Promise<void> {
  const log = createLogger({ level: options.verbose ? 'debug' : 'info' });
  // Handlers go in before anything is printed: a supervisor that signals as soon as it reads
  // "ready" must get a clean stop, not the default kill.
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  const running = await startServer(options, (line) => process.stdout.write(line + '\n'), log);
  const signal = await signalled;
  log.info(`${signal}: finishing requests in flight, flushing, exiting`);
  await running.stop();
}

export const serveCommand: CommandModule<object, ServeOptions> = {
  command: 'serve',
  describe: 'Serve a disk over NBD: "source" (the disk as it is) and "destination" (the new layout of --map)',
  builder: (yargs) =>
    serveOptions(yargs)
      .example('$0 serve --disk disk.img', 'identity map on 127.0.0.1:10809')
      .example('$0 serve --disk /dev/sdb --map layout.json --cache 1G', 'migrate a block device to the layout of layout.json')
      .example('$0 serve --disk disk.img --listen 127.0.0.1:0 --control ./ctl.sock', 'pick a free port (printed on start), control socket in the current directory')
      .example('$0 serve --disk disk.img --read-only', 'inspect a disk: source only, read-only') as unknown as Argv<ServeOptions>,
  handler: (argv) => serveUntilSignalled(argv),
};
