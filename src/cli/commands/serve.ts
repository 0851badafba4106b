import type { Argv, CommandModule } from 'yargs';
import { createLogger, type Logger } from '../../log/logger.js';
import { PlainDiskView } from '../../remap/plain-disk-view.js';
import type { BlockExport } from '../../server/block-export.js';
import { StaticExportTable } from '../../server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer, type Endpoint } from '../../server/nbd-server.js';
import { Disk } from '../../store/disk.js';
import { DEFAULT_HOST, DEFAULT_PORT, nbdClientCommand, nbdUri, parseListen, unixEndpoint } from '../endpoints.js';
import { formatBytes } from '../../format/bytes.js';
import { UserError } from '../user-error.js';

export interface ServeOptions {
  disk: string;
  listen?: string;
  socket?: string;
  readOnly: boolean;
  maxConnections: number;
  handshakeTimeout: number;
  verbose: boolean;
}

export interface RunningServer {
  endpoints: Endpoint[];
  /** Finish requests in flight, flush, close the disk. */
  stop(): Promise<void>;
}

export function serveOptions<T>(yargs: Argv<T>) {
  return yargs
    .option('disk', {
      type: 'string',
      demandOption: true,
      describe: 'The disk to serve: an image file or a block device (opened exclusively; a second server on it is refused)',
    })
    .option('listen', {
      type: 'string',
      describe: `TCP address HOST:PORT (default ${DEFAULT_HOST}:${DEFAULT_PORT} unless only --socket is given; port 0 picks a free port)`,
    })
    .option('socket', { type: 'string', describe: 'Also (or only) listen on this unix socket path' })
    .option('read-only', { type: 'boolean', default: false, describe: 'Export the source read-only (writes fail with EPERM)' })
    .option('max-connections', { type: 'number', default: DEFAULT_SERVER_OPTIONS.maxConnections, describe: 'Clients served at once; more are refused' })
    .option('handshake-timeout', {
      type: 'number',
      default: DEFAULT_SERVER_OPTIONS.handshakeTimeoutMs / 1000,
      describe: 'Seconds a client may take to finish the NBD handshake before it is dropped',
    })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log every failed request and connection event' });
}

/** Opens the disk, starts listening and prints how to attach. */
export async function startServer(options: ServeOptions, print: (line: string) => void, log: Logger): Promise<RunningServer> {
  const endpoints: Endpoint[] = [];
  if (options.listen !== undefined || options.socket === undefined) {
    endpoints.push(parseListen(options.listen ?? `${DEFAULT_HOST}:${DEFAULT_PORT}`));
  }
  if (options.socket !== undefined) endpoints.push(unixEndpoint(options.socket));
  if (!Number.isInteger(options.maxConnections) || options.maxConnections < 1) {
    throw new UserError(`--max-connections ${options.maxConnections} must be a positive whole number`, 'e.g. --max-connections 16', 2);
  }
  if (!(options.handshakeTimeout > 0)) {
    throw new UserError(`--handshake-timeout ${options.handshakeTimeout} must be a positive number of seconds`, 'e.g. --handshake-timeout 10', 2);
  }

  const disk = await Disk.open(options.disk, { readOnly: options.readOnly });
  const source: BlockExport = new PlainDiskView('source', `the disk ${disk.path} as it is`, disk, options.readOnly);
  const server = new NbdServer(
    new StaticExportTable([source]),
    { ...DEFAULT_SERVER_OPTIONS, maxConnections: options.maxConnections, handshakeTimeoutMs: options.handshakeTimeout * 1000 },
    log,
  );
  const bound: Endpoint[] = [];
  try {
    for (const endpoint of endpoints) bound.push(await server.listen(endpoint));
  } catch (err) {
    await server.close();
    await disk.close();
    throw err;
  }

  print(`nbd-remapper: serving ${disk.path} (${formatBytes(disk.size)}, ${disk.size} bytes)${options.readOnly ? ', read-only' : ''}`);
  for (const exp of [source]) {
    print(`export '${exp.name}': ${exp.description}`);
    for (const endpoint of bound) print(`  ${nbdUri(endpoint, exp.name)}`);
    print(`  attach: ${nbdClientCommand(bound[0], exp.name, '/dev/nbd0')}`);
  }
  print('ready; Ctrl-C (SIGINT) or SIGTERM stops after answering requests in flight');

  let stopping: Promise<void> | undefined;
  return {
    endpoints: bound,
    stop() {
      stopping ??= (async () => {
        await server.close();
        await disk.sync();
        await disk.close();
      })();
      return stopping;
    },
  };
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
  describe: 'Serve a disk over NBD (export "source": the disk as it is)',
  builder: (yargs) =>
    serveOptions(yargs)
      .example('$0 serve --disk disk.img', 'serve on 127.0.0.1:10809')
      .example('$0 serve --disk /dev/sdb --socket /run/remapper.sock', 'serve a block device on a unix socket only')
      .example('$0 serve --disk disk.img --listen 127.0.0.1:0', 'pick a free port (printed on start)') as unknown as Argv<ServeOptions>,
  handler: (argv) => serveUntilSignalled(argv),
};
