import type { Argv, CommandModule } from 'yargs';
import { ControlClient, defaultControlPath } from '../../control/control-client.js';
import type { FinishProgress, MigrationStatus } from '../../control/migration-control.js';
import { formatStatus } from '../format-status.js';
import { UserError } from '../user-error.js';
import { BLOCKS, ProgressDisplay } from '../../format/progress-display.js';
import { MAX_NOTE_BYTES } from '../../control/checkpoint-note.js';

interface ControlOptions {
  control: string;
}

function withControl<T>(yargs: Argv<T>): Argv<T & ControlOptions> {
  return yargs.option('control', {
    type: 'string',
    requiresArg: true,
    default: defaultControlPath(),
    describe: 'Control socket of the running server (the same default as `serve --control`; env NBD_REMAPPER_CONTROL)',
  }) as unknown as Argv<T & ControlOptions>;
}

const print = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : text + '\n');

export const statusCommand: CommandModule<object, ControlOptions & { json: boolean }> = {
  command: 'status',
  describe: 'Show the migration: phase, blocks released/confirmed/at risk, held, spilled, landed, cache use',
  builder: (y) => withControl(y).option('json', { type: 'boolean', default: false, describe: 'Machine-readable output' }) as unknown as Argv<ControlOptions & { json: boolean }>,
  handler: async (argv) => {
    const status = await new ControlClient(argv.control).status();
    print(argv.json ? JSON.stringify(status, null, 2) : formatStatus(status));
  },
};

export const sealCommand: CommandModule<object, ControlOptions> = {
  command: 'seal',
  describe: 'Make source read-only and let destination accept writes (cannot be undone). Run fstrim on the old filesystems first',
  builder: (y) => withControl(y),
  handler: async (argv) => {
    const client = new ControlClient(argv.control);
    // Sealed already (a script run again after a restart, even after finish): the state it asks for is there, so that is success.
    const before = await client.status();
    if (before.phase !== 'unsealed') {
      print(`already sealed: nothing to do (phase ${before.phase}).`);
      print(formatStatus(before));
      return;
    }
    const status = await client.seal();
    print('sealed: source is read-only; destination accepts writes.');
    print(formatStatus(status));
  },
};

export const checkpointCommand: CommandModule<object, ControlOptions & { note?: string }> = {
  command: 'checkpoint',
  describe: 'Promise that everything read from source so far is copied durably (run `sync` on the new filesystems first)',
  builder: (y) =>
    withControl(y)
      .option('note', {
        type: 'string',
        requiresArg: true,
        describe: "Your own words on how far the copy got (at most 4 KiB), kept with the checkpoint in the state and shown by status — where to go on after a crash",
      })
      .example('$0 checkpoint --note "rsync done: /home, /srv"', 'checkpoint, and remember what is copied') as unknown as Argv<ControlOptions & { note?: string }>,
  handler: async (argv) => {
    const noteBytes = argv.note === undefined ? 0 : Buffer.byteLength(argv.note);
    if (noteBytes > MAX_NOTE_BYTES) {
      throw new UserError(`--note is ${noteBytes} bytes long; a checkpoint keeps at most ${MAX_NOTE_BYTES}`, 'shorten it: where the copy got to (a path, a position), not a log', 2);
    }
    const status = await new ControlClient(argv.control).checkpoint(argv.note);
    print('checkpoint recorded.');
    print(formatStatus(status));
  },
};

interface FinishOptions extends ControlOptions {
  disk?: string;
  state?: string;
}

export const finishCommand: CommandModule<object, FinishOptions> = {
  command: 'finish',
  describe: 'Land everything still held; afterwards the disk IS the new layout. Refused while source has clients. With --disk: offline, no server',
  builder: (y) =>
    withControl(y)
      .option('disk', {
        type: 'string',
        requiresArg: true,
        describe: 'Finish offline, without a server (after a crash, or to resume an interrupted finish): the disk the server ran on',
      })
      .option('state', { type: 'string', requiresArg: true, describe: 'With --disk: the state file the server ran with (default DISK.remap-state next to an image file)' })
      .example('$0 finish', 'ask the running server to finish')
      .example('$0 finish --disk disk.img', 'finish (or resume finishing) offline; the server must not be running') as unknown as Argv<FinishOptions>,
  handler: async (argv) => {
    const progress = new ProgressDisplay(process.stdout, 'finish', BLOCKS);
    if (argv.disk !== undefined) {
      try {
        await finishDiskOffline(argv.disk, argv.state, (p) => progress.update(p.done, p.total));
      } finally {
        progress.end();
      }
      print(`finished offline: ${argv.disk} now holds the new layout.`);
      return;
    }
    if (argv.state !== undefined) throw new UserError('--state needs --disk: it names the state of an offline finish', 'add --disk PATH, or leave --state out to ask the running server', 2);
    let status: MigrationStatus;
    // Ctrl-C stops the watching, not the finish: the server goes on, and says so in status.
    const onInterrupt = (): void => {
      progress.end();
      process.stderr.write('finish goes on in the server: `nbd-remapper status` shows its progress (this command only stopped watching it)\n');
      process.exit(130);
    };
    process.once('SIGINT', onInterrupt);
    try {
      status = await new ControlClient(argv.control).finish((p: FinishProgress) => progress.update(p.done, p.total));
    } finally {
      process.off('SIGINT', onInterrupt);
      progress.end();
    }
    print('finished: the disk now holds the new layout; destination stays served as a plain view of the disk.');
    print(formatStatus(status));
  },
};

async function finishDiskOffline(diskPath: string, state: string | undefined, onProgress: (p: FinishProgress) => void): Promise<void> {
  // Loaded only here: status, seal and checkpoint start faster without the engine and the disk layer.
  const [{ createLogger }, { finishOffline, resolveStatePath }, { Disk }, { DiskNotFoundError }] = await Promise.all([
    import('../../log/logger.js'),
    import('../../state/index.js'),
    import('../../store/disk.js'),
    import('../../store/disk-errors.js'),
  ]);
  const log = createLogger({ level: 'info' });
  // The exclusive lock makes a running server on this disk an error here, not a second writer.
  const disk = await Disk.open(diskPath, { readOnly: false }).catch((err: unknown) => {
    // Disk.open's fix for a missing disk is to create one, which is right for serve, not here: a new disk has no migration to finish.
    if (err instanceof DiskNotFoundError) throw new UserError(err.message, 'give --disk the disk (or image) the server ran on: the one its state file belongs to');
    throw err;
  });
  try {
    const statePath = resolveStatePath({ diskPath: disk.path, isBlockDevice: disk.isBlockDevice, statePath: state });
    await finishOffline({ disk, statePath, log, onProgress });
    await disk.sync();
    const { MigrationRegistry } = await import('../migration-registry.js');
    const registry = new MigrationRegistry();
    await registry.forget(statePath).catch((err: unknown) => log.warn(`could not take the finished migration off ${registry.directory}: ${(err as Error).message}`));
  } finally {
    await disk.close();
  }
}
