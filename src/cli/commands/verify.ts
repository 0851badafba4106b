import type { Argv, CommandModule } from 'yargs';
import { formatBytes } from '../../format/bytes.js';
import { NbdUriError } from '../../client/nbd-uri.js';
import { parseSize } from '../parse-size.js';
import { UserError } from '../user-error.js';

export interface VerifyArgs {
  export: string;
  record?: string;
  against?: string;
  chunkSize: string;
  requests: number;
  progress: boolean;
}

/** Ranges listed when the export differs; the rest are counted. */
const LISTED_MISMATCHES = 10;

export async function verifyHandler(args: VerifyArgs): Promise<void> {
  if ((args.record === undefined) === (args.against === undefined)) {
    throw new UserError(
      'give exactly one of --record FILE and --against FILE',
      'before finish: verify --export …/destination --record FILE; after it: verify --export …/destination --against FILE',
      2,
    );
  }
  const chunkBytes = parseSize(args.chunkSize, '--chunk-size');
  if (chunkBytes < 4096 || chunkBytes > 64 * 1024 * 1024) throw new UserError(`--chunk-size ${args.chunkSize} must be from 4K to 64M`, 'e.g. --chunk-size 1M', 2);
  if (!Number.isInteger(args.requests) || args.requests < 1 || args.requests > 64) throw new UserError(`--requests ${args.requests} must be a whole number from 1 to 64`, 'e.g. --requests 8', 2);
  // The client stack loads only for this command.
  const { runVerify } = await import('../../client/verify/run-verify.js');
  const { ManifestError } = await import('../../client/verify/digest-manifest.js');
  let outcome: Awaited<ReturnType<typeof runVerify>>;
  try {
    outcome = await runVerify({ uri: args.export, record: args.record, against: args.against, chunkBytes, requests: args.requests, progress: args.progress ? process.stderr : undefined });
  } catch (err) {
    if (err instanceof NbdUriError) throw new UserError(err.message, err.fix, 2);
    if (err instanceof ManifestError) throw new UserError(err.message, err.fix, 1);
    throw err;
  }
  const what = `${formatBytes(outcome.size)} (${outcome.size} bytes, ${outcome.chunks} chunk(s))`;
  if (outcome.kind === 'recorded') {
    process.stdout.write(`recorded ${what} of ${args.export} in ${outcome.path}\n`);
    return;
  }
  if (outcome.kind === 'identical') {
    process.stdout.write(`identical: ${args.export} holds what the record says, ${what}\n`);
    return;
  }
  const bytes = outcome.mismatches.reduce((n, m) => n + m.length, 0);
  const lines = outcome.mismatches.slice(0, LISTED_MISMATCHES).map((m) => `  bytes ${m.offset}…${m.offset + m.length - 1} (${formatBytes(m.length)})`);
  if (outcome.mismatches.length > LISTED_MISMATCHES) lines.push(`  … and ${outcome.mismatches.length - LISTED_MISMATCHES} more range(s)`);
  throw new UserError(
    `${args.export} differs from the record in ${formatBytes(bytes)} of ${what}:\n${lines.join('\n')}`,
    'keep the state file and the disk as they are, and report this with the server\'s log: finish should leave the disk as destination served it',
    1,
  );
}

export const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify',
  describe: 'Check that the disk after finish is what destination served before it: record its checksums before finish, compare after',
  builder: (yargs) =>
    yargs
      .option('export', { type: 'string', requiresArg: true, demandOption: true, describe: 'The export to read: nbd+unix:///destination?socket=PATH or nbd://HOST:PORT/destination (nbds for TLS)' })
      .option('record', { type: 'string', requiresArg: true, describe: 'Write the SHA-256 of every chunk of the export to this file (before finish)' })
      .option('against', { type: 'string', requiresArg: true, describe: 'Compare the export with a file --record wrote (after finish); exit 1 and the differing byte ranges if it differs' })
      .option('chunk-size', { type: 'string', requiresArg: true, default: '1M', describe: 'Bytes per checksum when recording (4K…64M); a comparison uses the record\'s' })
      .option('requests', { type: 'number', requiresArg: true, default: 8, describe: 'Chunks read at once' })
      .option('progress', { type: 'boolean', default: false, describe: 'Show progress on stderr' })
      .example('$0 verify --export nbd+unix:///destination?socket=/run/nbd.sock --record before-finish.sha256', 'before finish (sources detached, copy done)')
      .example('$0 verify --export nbd+unix:///destination?socket=/run/nbd.sock --against before-finish.sha256', 'after finish: exit 0 if the disk is what destination served') as unknown as Argv<VerifyArgs>,
  handler: (argv) => verifyHandler(argv),
};
