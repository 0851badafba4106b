import type { Argv, CommandModule } from 'yargs';
import { ControlClient, defaultControlPath } from '../../control/control-client.js';
import type { FinishProgress, MigrationStatus } from '../../control/migration-control.js';
import { formatStatus } from '../format-status.js';
import { ProgressReporter } from '../progress-reporter.js';

interface ControlOptions {
  control: string;
}

function withControl<T>(yargs: Argv<T>): Argv<T & ControlOptions> {
  return yargs.option('control', {
    type: 'string',
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
    const status = await new ControlClient(argv.control).seal();
    print('sealed: source is read-only; destination accepts writes.');
    print(formatStatus(status));
  },
};

export const checkpointCommand: CommandModule<object, ControlOptions> = {
  command: 'checkpoint',
  describe: 'Promise that everything read from source so far is copied durably (run `sync` on the new filesystems first)',
  builder: (y) => withControl(y),
  handler: async (argv) => {
    const status = await new ControlClient(argv.control).checkpoint();
    print('checkpoint recorded.');
    print(formatStatus(status));
  },
};

export const finishCommand: CommandModule<object, ControlOptions> = {
  command: 'finish',
  describe: 'Land everything still held; afterwards the disk IS the new layout. Refused while source has clients',
  builder: (y) => withControl(y),
  handler: async (argv) => {
    const progress = new ProgressReporter('finish', process.stdout);
    let status: MigrationStatus;
    try {
      status = await new ControlClient(argv.control).finish((p: FinishProgress) => progress.update(p.done, p.total));
    } finally {
      progress.end();
    }
    print('finished: the disk now holds the new layout; destination stays served as a plain view of the disk.');
    print(formatStatus(status));
  },
};
