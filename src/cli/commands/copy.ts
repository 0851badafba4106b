import type { Argv, CommandModule } from 'yargs';
import { DEFAULT_CHECKPOINT_EVERY } from '../../client/copy/copy-defaults.js';
import { CopyPlanError } from '../../client/copy/copy-plan.js';
import { formatCopySummary } from '../../client/copy/copy-summary.js';
import { NbdUriError } from '../../client/nbd-uri.js';
import { parseSize } from '../parse-size.js';
import { UserError } from '../user-error.js';

export interface CopyArgs {
  from: string;
  to: string;
  plan?: string;
  requestSize: string;
  requests: number;
  progress: boolean;
  control?: string;
  checkpointEvery: string;
}

/** Chunks in flight beyond this buy nothing but memory (each holds up to --request-size bytes). */
const MAX_REQUESTS = 256;

export async function copyHandler(args: CopyArgs): Promise<void> {
  const requestSize = parseSize(args.requestSize, '--request-size');
  if (requestSize < 1) throw new UserError(`--request-size ${args.requestSize} must be at least one byte`, 'e.g. --request-size 1M', 2);
  if (!Number.isInteger(args.requests) || args.requests < 1 || args.requests > MAX_REQUESTS) {
    throw new UserError(`--requests ${args.requests} must be a whole number from 1 to ${MAX_REQUESTS}`, 'e.g. --requests 8', 2);
  }
  const checkpointEvery = parseSize(args.checkpointEvery, '--checkpoint-every');
  if (checkpointEvery < 1) throw new UserError(`--checkpoint-every ${args.checkpointEvery} must be at least one byte`, 'e.g. --checkpoint-every 1G', 2);
  try {
    // The client stack loads only for a copy: the other commands start faster without it.
    const { runCopy } = await import('../../client/copy/run-copy.js');
    const summary = await runCopy(
      { from: args.from, to: args.to, plan: args.plan, requestSize, requests: args.requests, progress: args.progress, control: args.control, checkpointEvery },
      { note: (line) => process.stderr.write(`nbd-remapper copy: ${line}\n`), progressStream: process.stderr },
    );
    process.stdout.write(`${formatCopySummary(summary)}\n`);
  } catch (err) {
    // What the user wrote is wrong: a usage error (exit 2), like a bad option.
    if (err instanceof NbdUriError || err instanceof CopyPlanError) throw new UserError(err.message, err.fix, 2);
    throw err;
  }
}

export const copyCommand: CommandModule<object, CopyArgs> = {
  command: 'copy',
  describe: 'Copy byte ranges from one NBD export to another (block-level migration; whole disk without --plan)',
  builder: (yargs) =>
    yargs
      .option('from', { type: 'string', requiresArg: true, demandOption: true, describe: 'Source export: nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH; nbds:// and nbds+unix:// for TLS (?tls-certificates=DIR with DIR/ca-cert.pem)' })
      .option('to', { type: 'string', requiresArg: true, demandOption: true, describe: 'Destination export, same forms as --from' })
      .option('plan', {
        type: 'string',
        requiresArg: true,
        describe: 'JSON file {"moves":[{"from":SRC,"to":DST,"length":N},…]} run in order (docs/copy-plans.md); default: the whole source to destination offset 0',
      })
      .option('request-size', { type: 'string', requiresArg: true, default: '1M', describe: 'Bytes per read/write request (K/M suffixes)' })
      .option('requests', { type: 'number', requiresArg: true, default: 8, describe: 'Chunks in flight at once' })
      .option('progress', { type: 'boolean', default: false, describe: 'Show progress on stderr (a bar on a terminal, a line every few seconds otherwise)' })
      .option('control', {
        type: 'string',
        requiresArg: true,
        describe:
          'Control socket of the nbd-remapper serving --from: checkpoint as the copy goes, and resume after the last checkpoint when run again (after a crash, re-reading what a checkpoint confirmed could fail)',
      })
      .option('checkpoint-every', { type: 'string', requiresArg: true, default: `${DEFAULT_CHECKPOINT_EVERY / 2 ** 30}G`, describe: 'With --control: flush the destination and checkpoint after each this many bytes (K/M/G)' })
      .example('$0 copy --from nbd://127.0.0.1/source --to nbd://127.0.0.1/destination', 'migrate a whole disk')
      .example('$0 copy --from URI --to URI --plan moves.json', 'copy the ranges a plan lists')
      .example('$0 copy --from URI --to URI --control /run/nbd-remapper/control.sock', 'checkpoint as it goes; run it again after a crash to resume') as unknown as Argv<CopyArgs>,
  handler: (argv) => copyHandler(argv),
};
