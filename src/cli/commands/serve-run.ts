// What `serve` does once its options are parsed: open the disk (and migration), start the server and the control plane.
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ControlServer } from '../../control/control-server.js';
import { formatBytes } from '../../format/bytes.js';
import { createLogger, type Logger } from '../../log/logger.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES } from '../../remap/defaults.js';
import { MapError, RemapMap, validateBlockSize, type RemapEngine } from '../../remap/index.js';
import { defaultStatePath, openMigration, resolveStatePath, type OpenedMigration } from '../../state/index.js';
import { PlainDiskView } from '../../remap/plain-disk-view.js';
import type { BlockExport } from '../../server/block-export.js';
import { ExportList } from '../../server/export-table.js';
import { NbdServer, type Endpoint } from '../../server/nbd-server.js';
import { loadServerTls, TlsCertificatesError, type ServerTls } from '../../server/tls-certificates.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/server-options.js';
import { settleReadReplies } from '../../server/unread-file-replies.js';
import { Disk } from '../../store/disk.js';
import { DEFAULT_HOST, DEFAULT_PORT, isReachableFromElsewhere, isWildcard, localEndpoint, nbdClientCommand, nbdUri, openPortWarning, otherMachinesLine, parseListen, unixEndpoint } from '../endpoints.js';
import { loadMapFile } from '../map-file.js';
import { diskIdentity } from '../disk-identity.js';
import { describeMigration, DiskMigrations, MigrationRegistry } from '../migration-registry.js';
import { checkMemoryFit } from '../memory-fit.js';
import { giveBackMemory } from '../give-back-memory.js';
import { parseSize } from '../parse-size.js';
import { serverOutput } from '../server-output.js';
import { UserError } from '../user-error.js';
import { checkStateLocation } from '../state-location.js';
import { watchLoopAttachments } from '../loop-watch.js';
import { findUnpartitionedSpace, unpartitionedHintLines, type UnpartitionedSpace } from '../unpartitioned-hint.js';
import type { ServeOptions } from './serve.js';
import { shellQuote } from '../../format/shell-quote.js';
import { unavailableReason as linuxIoMissing } from 'linux-io';

export interface RunningServer {
  endpoints: Endpoint[];
  /**
   * Answer requests in flight, make acknowledged data durable, close the disk.
   * While held data finds the state's file system full, it tries again until
   * `giveUp` settles (without it, it fails at once).
   */
  stop(giveUp?: Promise<unknown>): Promise<void>;
}

interface Sizes {
  cacheBytes: number;
  revisitCacheBytes: number;
  /** The caches leave little of the RAM there is (checkMemoryFit). */
  tight: string | undefined;
  tls: ServerTls | undefined;
}

/** An option's value as the user should see it back: yargs turns what is not a number into NaN. */
const given = (option: string, value: number): string => (Number.isNaN(value) ? `${option} is not a number: it` : `${option} ${value}`);

/** Node's timers take at most 2^31 - 1 ms: a longer delay becomes 1 ms, which would drop every client at once. */
const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

function checkSeconds(option: string, value: number, example: number): void {
  if (!(value > 0)) throw new UserError(`${given(option, value)} must be a positive number of seconds`, `e.g. ${option} ${example}`, 2);
  if (value > MAX_TIMEOUT_SECONDS) {
    throw new UserError(`${option} ${value} is longer than the ${MAX_TIMEOUT_SECONDS} s (24.8 days) a timer can wait`, `e.g. ${option} ${example}`, 2);
  }
}

function checkOptions(options: ServeOptions): Sizes {
  if (!Number.isInteger(options.maxConnections) || options.maxConnections < 1) {
    throw new UserError(`${given('--max-connections', options.maxConnections)} must be a positive whole number`, 'e.g. --max-connections 16', 2);
  }
  checkSeconds('--handshake-timeout', options.handshakeTimeout, 10);
  checkSeconds('--stall-timeout', options.stallTimeout, 15);
  // Resuming without --block-size takes the state's; checked against the default until the state is read.
  const blockSize = options.blockSize ?? DEFAULT_BLOCK_SIZE;
  try {
    validateBlockSize(blockSize);
  } catch (err) {
    if (!(err instanceof MapError)) throw err;
    throw new UserError(`${given('--block-size', blockSize)} must be a power of two from 512 to 65536`, err.fix, 2);
  }
  const cacheBytes = parseSize(options.cache, '--cache');
  if (cacheBytes < blockSize) {
    throw new UserError(
      `--cache ${options.cache} is smaller than one block (${blockSize} bytes)`,
      `give at least one block (finish needs it to break cycles); the default is ${formatBytes(DEFAULT_CACHE_BYTES)}`,
      2,
    );
  }
  const revisitCacheBytes = parseSize(options.revisitCache, '--revisit-cache');
  // Only a remapping server fills the caches.
  const tight = options.readOnly ? undefined : checkMemoryFit(cacheBytes, revisitCacheBytes, blockSize);
  return { cacheBytes, revisitCacheBytes, tight, tls: tlsOf(options) };
}

/** --tls and --tls-certificates: require is the default once certificates are given. */
function tlsOf(options: ServeOptions): ServerTls | undefined {
  const mode = options.tls ?? (options.tlsCertificates !== undefined ? 'require' : 'off');
  if (mode === 'off') {
    if (options.tlsVerifyPeer) throw new UserError('--tls-verify-peer needs TLS', 'give --tls-certificates DIR (and leave out --tls off)', 2);
    return undefined;
  }
  if (options.tlsCertificates === undefined) {
    throw new UserError(`--tls ${mode} needs the server's certificate`, 'give --tls-certificates DIR, a directory with server-cert.pem and server-key.pem', 2);
  }
  try {
    return loadServerTls(resolve(options.tlsCertificates), mode === 'require' ? 'required' : 'allowed', options.tlsVerifyPeer);
  } catch (err) {
    if (err instanceof TlsCertificatesError) throw new UserError(`--tls-certificates: ${err.message}`, err.fix, 2);
    throw err;
  }
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
  if (sizes.tight !== undefined) log.warn(sizes.tight);
  if (linuxIoMissing !== undefined) {
    log.warn(`the linux-io addon did not load (${linuxIoMissing}): a read that misses the page cache holds up every client while the disk answers, and unix-socket reads are slower; rebuild it with npm ci (it needs g++, make and python3)`);
  }
  const disk = await Disk.open(options.disk, { readOnly: options.readOnly });
  const loopWatch = options.readOnly ? undefined : watchLoopAttachments(disk, log);
  const table = new ExportList();
  let migration: OpenedMigration | undefined;
  let statePath: string | undefined;
  let engine: RemapEngine | undefined;
  let control: ControlServer | undefined;
  /** Undoes a migration this start began, if the start fails: no state file or listing is left behind for a server that never served. */
  let undoNewMigration: (() => Promise<void>) | undefined;
  const server = new NbdServer(
    table,
    {
      ...DEFAULT_SERVER_OPTIONS,
      maxConnections: options.maxConnections,
      handshakeTimeoutMs: options.handshakeTimeout * 1000,
      stallTimeoutMs: options.stallTimeout * 1000,
      tls: sizes.tls,
    },
    log,
  );
  const bound: Endpoint[] = [];
  try {
    const identity = await diskIdentity(disk.path);
    const migrations = new DiskMigrations(
      new MigrationRegistry(),
      disk.path,
      identity.key,
      disk.isBlockDevice ? undefined : defaultStatePath(disk.path),
      identity.bornAt,
    );
    if (options.readOnly) {
      for (const other of await migrations.unfinished()) {
        log.warn(`this disk has an unfinished migration (${describeMigration(other)}): it is partly in the new layout, and --read-only serves it as it is now`);
      }
      table.add(new PlainDiskView('source', `the disk ${disk.path} as it is (read-only)`, disk, true));
    } else {
      const map = options.map === undefined ? undefined : await loadMapFile(options.map, disk.size, options.blockSize ?? DEFAULT_BLOCK_SIZE);
      statePath = resolve(resolveStatePath({ diskPath: disk.path, isBlockDevice: disk.isBlockDevice, statePath: options.state }));
      const locationWarning = checkStateLocation({ statePath, diskPath: disk.path, isBlockDevice: disk.isBlockDevice, allowVolatile: options.allowVolatileState });
      if (locationWarning !== undefined) log.warn(locationWarning);
      // A new migration: not over a disk whose blocks another, unfinished one has partly moved.
      if (!existsSync(statePath)) await migrations.refuseNewIfUnfinished(statePath);
      migration = await openMigration({ disk, diskPath: disk.path, statePath, map, blockSize: options.blockSize, ...sizes, safe: options.safe, log });
      engine = migration.engine;
      const listed = statePath;
      const forget = (): void => {
        migrations.forget(listed).catch((err: unknown) => log.warn(`could not take the finished migration off ${migrations.directory}: ${(err as Error).message}`));
      };
      if (!migration.resumed) {
        await migrations.record(statePath).catch((err: unknown) =>
          log.warn(`could not list this migration in ${migrations.directory} (${(err as Error).message}): it resumes all the same, but a serve of this disk with another --state will not be warned`),
        );
        const fresh = engine;
        undoNewMigration = async () => {
          // Only while nothing happened in it: an endpoint that listened before a later one failed may have let a client in.
          if (fresh.phase !== 'unsealed' || fresh.status().stateRecords.appended > 0) return;
          await migrations.forget(listed);
          rmSync(listed, { force: true });
        };
      }
      if (engine.phase === 'finished') forget();
      engine.onPhase((phase) => {
        if (phase === 'finished') forget();
      });
      // A finished migration has no source any more: the disk is the new layout.
      if (engine.phase !== 'finished') table.add(engine.source);
      table.add(engine.destination);
      engine.onPhase((phase) => {
        if (phase !== 'finished') return;
        table.remove('source');
        // The engine let go of both caches' memory: the kernel gets it back now (best effort: never worth failing over).
        giveBackMemory().catch((err: unknown) => log.warn(`could not give the caches' memory back to the system: ${err instanceof Error ? err.message : String(err)}`));
      });
      // Status carries what the server saw of its clients beside what the engine holds.
      const remap = engine;
      control = new ControlServer(
        {
          // Replies from the page cache that clients have read count as read before the engine is asked.
          status: () => {
            settleReadReplies();
            return { ...remap.status(), clientsDroppedStalled: server.droppedStalled, diskAlsoAttached: loopWatch?.problem() ?? null };
          },
          seal: () => remap.seal(),
          checkpoint: (note) => {
            settleReadReplies();
            return remap.checkpoint(note);
          },
          finish: (onProgress) => {
            settleReadReplies();
            return remap.finish(onProgress);
          },
        },
        log,
      );
      await control.listen(options.control);
    }
    for (const endpoint of endpoints) bound.push(await server.listen(endpoint));
    // Clients with a certificate the CA signed are the only ones a server that requires TLS and verifies peers lets in.
    const closed = sizes.tls?.mode === 'required' && sizes.tls.verifyPeer;
    if (!closed) for (const open of bound.filter(isReachableFromElsewhere)) log.warn(openPortWarning(open, options.readOnly, sizes.tls?.mode === 'required'));
  } catch (err) {
    loopWatch?.stop();
    await server.close();
    await control?.close();
    await migration?.close();
    // Nothing was served: a later start must not find a migration (it would refuse another --state for this disk).
    await undoNewMigration?.().catch((undoErr: unknown) => log.warn(`could not remove the state this start made (${statePath}): ${(undoErr as Error).message}`));
    await disk.close();
    throw err;
  }

  const stateLine = migration ? `state: ${statePath} (${migration.resumed ? 'resumed' : 'new migration'})${options.safe ? '; safe mode' : ''}` : undefined;
  const outside =
    engine?.phase === 'unsealed'
      ? await findUnpartitionedSpace(
          (offset, length) => disk.read(offset, length),
          disk.size,
          engine.map.extents,
          engine.map.blockSize,
          engine.declaredFree(),
        ).catch((err: unknown) => {
          log.debug(`partition table not read: ${(err as Error).message}`);
          return undefined;
        })
      : undefined;
  printBanner(print, disk, stateLine, engine, table.list(), bound, options, outside, sizes.tls);

  let stopping: Promise<void> | undefined;
  return {
    endpoints: bound,
    stop(giveUp) {
      stopping ??= (async () => {
        loopWatch?.stop();
        await server.close();
        // A finish in progress stops between waves (its client is told how to resume) before the state closes.
        await engine?.stopFinish();
        await control?.close();
        // Held data goes into the state first: a clean stop loses nothing.
        await migration?.close(giveUp);
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
  outside: UnpartitionedSpace | undefined,
  tls: ServerTls | undefined,
): void {
  print(`nbd-remapper: serving ${disk.path} (${formatBytes(disk.size)}, ${disk.size} bytes)${options.readOnly ? ', read-only' : ''}`);
  if (engine) {
    const map = engine.map;
    if (stateLine) print(stateLine);
    print(
      `map: ${options.map ?? (isIdentity(map) ? 'identity' : 'as recorded in the state')} — ${map.extents.length} extent(s)${map.listedExtents === map.extents.length ? '' : ` (${map.listedExtents} listed, adjacent ones merged)`}, destination ${formatBytes(map.destinationSize)}, block size ${map.blockSize}, cache ${options.cache}, revisit cache ${options.revisitCache}, phase ${engine.phase}`,
    );
  }
  const local = bound.map(localEndpoint);
  const required = tls?.mode === 'required';
  if (tls !== undefined) {
    print(
      `TLS ${required ? 'required' : 'offered'}: certificate from ${tls.source}; clients check it against the CA that signed it (libnbd: ?tls-certificates=DIR with DIR/ca-cert.pem)${
        tls.verifyPeer ? '; clients must show a certificate that CA signed (DIR/client-cert.pem, client-key.pem)' : ''
      }`,
    );
  }
  // The CA's certificate, where nbdkit's layout keeps it beside the server's (nbd-client checks the server against it).
  const caCertFile = tls === undefined ? undefined : existsSync(join(tls.source, 'ca-cert.pem')) ? join(tls.source, 'ca-cert.pem') : 'CA-CERT.pem';
  exports.forEach((exp, i) => {
    print(`export '${exp.name}': ${exp.description}`);
    for (const endpoint of local) print(`  ${nbdUri(endpoint, exp.name, required)}`);
    print(`  attach: ${nbdClientCommand(local[0], exp.name, `/dev/nbd${i}`, required && caCertFile !== undefined ? { caCertFile } : undefined)}`);
  });
  const open = bound.find(isWildcard);
  if (open !== undefined) print(otherMachinesLine(open));
  if (engine) {
    print(`control: ${options.control}  (nbd-remapper status|seal|checkpoint|finish --control ${shellQuote(options.control)})`);
    if (engine.phase === 'unsealed') print('next: mount the old filesystems from source, fstrim them, then `nbd-remapper seal`');
    // The attach commands above put source on /dev/nbd0 when it is listed first.
    if (outside !== undefined) for (const line of unpartitionedHintLines(outside, `/dev/nbd${exports.findIndex((e) => e.name === 'source')}`)) print(line);
    if (engine.phase === 'finished') print('this migration is finished: destination is a plain view of the disk (remove the state file to start a new one)');
  }
  print('ready; Ctrl-C (SIGINT), SIGTERM or SIGHUP stops after answering requests in flight');
}

function isIdentity(map: RemapMap): boolean {
  const [only] = map.extents;
  return map.extents.length === 1 && only.diskOffset === 0 && only.length === map.diskSize;
}

/**
 * Signals that stop the server cleanly. SIGHUP too: a terminal that closes
 * under a server run in the foreground must not kill it in the middle of a
 * request (a clean stop carries held data into the state).
 */
const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Listens for the stop signals for the rest of the process (never a moment
 * without a listener, when the default action would kill it); `next()`
 * resolves with the next one. Signals nobody waits for are ignored.
 */
function stopSignals(): { next(): Promise<NodeJS.Signals> } {
  const waiting: Array<(signal: NodeJS.Signals) => void> = [];
  for (const signal of STOP_SIGNALS) process.on(signal, () => waiting.shift()?.(signal));
  return { next: () => new Promise((resolve) => waiting.push(resolve)) };
}

/** Runs until SIGINT, SIGTERM or SIGHUP, then stops cleanly and exits 0. */
export async function serveUntilSignalled(options: ServeOptions): Promise<void> {
  const output = serverOutput();
  const log = createLogger({ level: options.verbose ? 'debug' : 'info', write: (line) => output.line('stderr', line) });
  // Handlers go in before anything is printed: a supervisor that signals as soon as it reads
  // "ready" must get a clean stop, not the default kill.
  const signals = stopSignals();
  const signalled = signals.next();
  const running = await startServer(options, (line) => output.line('stdout', line), log);
  output.neverWait();
  const signal = await signalled;
  log.info(`${signal}: finishing requests in flight, flushing, exiting`);
  try {
    // A second signal gives up on a stop that waits for room in the state's file system.
    await running.stop(signals.next());
  } finally {
    await output.beforeExit({ hungUp: signal === 'SIGHUP' });
  }
}
