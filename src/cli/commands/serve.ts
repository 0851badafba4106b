import type { Argv, CommandModule } from 'yargs';
import { defaultControlPath } from '../../control/control-client.js';
import { DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES, DEFAULT_REVISIT_CACHE_BYTES } from '../../remap/defaults.js';
import { DEFAULT_SERVER_OPTIONS } from '../../server/server-options.js';
import { DEFAULT_HOST, DEFAULT_PORT } from '../endpoints.js';

const MiB = 1024 * 1024;
const DISK_DESCRIPTION = 'The disk to serve: an image file or a block device (opened exclusively; a second server on it is refused)';

export interface ServeOptions {
  disk: string;
  listen?: string;
  socket?: string;
  readOnly: boolean;
  map?: string;
  /** Absent: DEFAULT_BLOCK_SIZE for a new migration, the state's own when resuming. */
  blockSize?: number;
  cache: string;
  revisitCache: string;
  control: string;
  state?: string;
  allowVolatileState: boolean;
  safe: boolean;
  maxConnections: number;
  handshakeTimeout: number;
  stallTimeout: number;
  tlsCertificates?: string;
  tls?: 'require' | 'allow' | 'off';
  tlsVerifyPeer: boolean;
  verbose: boolean;
}

/** The options of `serve`; `demo` shares them but brings its own disk (yargs cannot undo a demanded option). */
export function serveOptions<T>(yargs: Argv<T>, disk: { demand: boolean; describe: string } = { demand: true, describe: DISK_DESCRIPTION }) {
  return yargs
    .option('disk', { type: 'string', requiresArg: true, demandOption: disk.demand, describe: disk.describe })
    .option('map', {
      type: 'string',
      requiresArg: true,
      describe: 'JSON map of the new layout: {"extents":[{"destOffset","length","diskOffset"},…]} in bytes, destination order (default: identity, the destination is the whole disk). See README "Map files"',
    })
    .option('block-size', {
      type: 'number',
      requiresArg: true,
      defaultDescription: `${DEFAULT_BLOCK_SIZE}; when resuming, the block size the migration started with`,
      describe: 'Unit of ordering B in bytes (power of two, 512…65536); map extents must be multiples of it',
    })
    .option('cache', {
      type: 'string',
      requiresArg: true,
      default: `${DEFAULT_CACHE_BYTES / MiB}M`,
      describe: 'RAM for destination data that cannot land yet (K/M/G), taken when the source is sealed; over it, data spills into already-read disk blocks',
    })
    .option('revisit-cache', {
      type: 'string',
      requiresArg: true,
      default: `${DEFAULT_REVISIT_CACHE_BYTES / MiB}M`,
      describe: 'RAM keeping originals of overwritten blocks, so a second read of an old block still returns the old data (0 disables); taken when the source is sealed',
    })
    .option('control', {
      type: 'string',
      requiresArg: true,
      default: defaultControlPath(),
      describe: 'Unix socket of the control plane (seal, checkpoint, status, finish use the same default; env NBD_REMAPPER_CONTROL)',
    })
    .option('state', {
      type: 'string',
      requiresArg: true,
      describe:
        'Durable record of the migration (default: DISK.remap-state next to an image file; required for a block device, on another disk). Restarting with it resumes exactly where the migration was. STATE.lock beside it keeps a second process off it',
    })
    .option('allow-volatile-state', {
      type: 'boolean',
      default: false,
      describe:
        'Accept a --state on tmpfs or ramfs while the disk is not: a power loss or reboot then erases the only record of a half-moved disk (refused without it)',
    })
    .option('safe', {
      type: 'boolean',
      default: false,
      describe: 'Never overwrite an original a checkpoint has not confirmed (a write that would need one fails with ENOSPC): re-running the copy from the last checkpoint always works',
    })
    .option('listen', {
      type: 'string',
      requiresArg: true,
      describe: `TCP address HOST:PORT (default ${DEFAULT_HOST}:${DEFAULT_PORT} unless only --socket is given; port 0 picks a free port)`,
    })
    .option('socket', { type: 'string', requiresArg: true, describe: 'Also (or only) listen on this unix socket path' })
    .option('read-only', {
      type: 'boolean',
      default: false,
      describe: 'Inspect only: export just "source", read-only, with no destination and no remapping',
    })
    .option('max-connections', { type: 'number', requiresArg: true, default: DEFAULT_SERVER_OPTIONS.maxConnections, describe: 'Clients served at once; more are refused' })
    .option('handshake-timeout', {
      type: 'number',
      requiresArg: true,
      default: DEFAULT_SERVER_OPTIONS.handshakeTimeoutMs / 1000,
      describe: 'Seconds a client may take to finish the NBD handshake before it is dropped',
    })
    .option('stall-timeout', {
      type: 'number',
      requiresArg: true,
      default: DEFAULT_SERVER_OPTIONS.stallTimeoutMs / 1000,
      describe:
        'Seconds a client may hold request memory that other clients wait for (all clients share 256 MiB) while it neither reads its replies nor sends the rest of a request; then it is disconnected. Keep it well under the clients\' own timeout (nbd-client -t)',
    })
    .option('tls-certificates', {
      type: 'string',
      requiresArg: true,
      describe: "Directory with the server's TLS certificate (server-cert.pem, chain included) and key (server-key.pem), as for nbdkit and qemu-nbd: clients then upgrade with NBD_OPT_STARTTLS (libnbd: nbds:// or nbds+unix:// URIs)",
    })
    .option('tls', {
      choices: ['require', 'allow', 'off'] as const,
      requiresArg: true,
      describe: 'require: clients must use TLS (the default with --tls-certificates); allow: TLS or not, as each client chooses; off: no TLS',
    })
    .option('tls-verify-peer', {
      type: 'boolean',
      default: false,
      describe: "Accept only TLS clients whose certificate the CA in the certificates directory's ca-cert.pem signed (libnbd sends client-cert.pem and client-key.pem from its tls-certificates directory); with --tls require, nobody else gets in",
    })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'Log every failed request and connection event' });
}

export const serveCommand: CommandModule<object, ServeOptions> = {
  command: 'serve',
  describe: 'Serve a disk over NBD: "source" (the disk as it is) and "destination" (the new layout of --map)',
  builder: (yargs) =>
    serveOptions(yargs)
      .example('$0 serve --disk disk.img', 'identity map on 127.0.0.1:10809')
      .example('$0 serve --disk /dev/sdb --map layout.json --cache 1G', 'migrate a block device to the layout of layout.json')
      .example('$0 serve --disk disk.img --listen 127.0.0.1:0 --control ./ctl.sock', 'pick a free port (printed on start), control socket in the current directory')
      .example('$0 serve --disk disk.img --read-only', 'inspect a disk: source only, read-only')
      .example('$0 serve --disk /dev/sdb --map layout.json --listen 0.0.0.0:10809 --tls-certificates /etc/pki/nbd', 'over the network: TLS required (nbds://host/destination?tls-certificates=DIR with the CA in DIR/ca-cert.pem)') as unknown as Argv<ServeOptions>,
  // The server stack loads only when serving: the control commands start faster without it.
  handler: async (argv) => (await import('./serve-run.js')).serveUntilSignalled(argv),
};
