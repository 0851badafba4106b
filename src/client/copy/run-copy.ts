import { readFile } from 'node:fs/promises';
import { formatBytes } from '../../format/bytes.js';
import { NbdClient } from '../nbd-client.js';
import { NbdClientError } from '../nbd-client-error.js';
import { sameEndpoint } from '../same-endpoint.js';
import { parseNbdUri, sameServer, type NbdTarget } from '../nbd-uri.js';
import { copyByPlan, type CopySummary } from './copy-engine.js';
import { CopyPlanError, wholeDiskPlan, type CopyPlan } from './copy-plan.js';
import { ProgressDisplay, type ProgressStream } from '../../format/progress-display.js';
import { parseCopyPlan } from './parse-copy-plan.js';
import { planBytes } from './plan-chunks.js';
import { validateCopyPlan } from './validate-copy-plan.js';
import { checkpointedCopy } from './copy-checkpoints.js';
import { DEFAULT_CHECKPOINT_EVERY } from './copy-defaults.js';

export interface RunCopyOptions {
  from: string;
  to: string;
  /** Path of a plan file; without one the whole source goes to destination offset 0. */
  plan?: string;
  requestSize: number;
  /** Chunks in flight. */
  requests: number;
  progress: boolean;
  /**
   * The control socket of the nbd-remapper that serves --from: the copy then
   * checkpoints every `checkpointEvery` bytes (after flushing the
   * destination) and, run again after a crash, resumes after its last one.
   */
  control?: string;
  checkpointEvery?: number;
}

export interface RunCopyIo {
  /** Remarks for the person (sizes differ, request size lowered, …). */
  note(line: string): void;
  /** Where progress goes when asked for (stderr in the CLI). */
  progressStream: ProgressStream;
}

/**
 * `nbd-remapper copy`: connect to both exports, settle the plan (from the file
 * or the whole disk), check it against both exports, copy, flush, disconnect.
 * Everything the user wrote is checked before the first byte moves.
 */
export async function runCopy(options: RunCopyOptions, io: RunCopyIo): Promise<CopySummary> {
  const sourceTarget = parseNbdUri(options.from);
  const destinationTarget = parseNbdUri(options.to);
  const filePlan = options.plan === undefined ? undefined : parseCopyPlan(await readPlanFile(options.plan), options.plan);

  const source = await NbdClient.connect(options.from, { maxInFlight: options.requests });
  let destination: NbdClient | undefined;
  try {
    destination = await NbdClient.connect(options.to, { maxInFlight: options.requests });
    if (destination.readOnly) {
      throw new NbdClientError(
        'unsupported',
        `the destination ${destination.uri} is read-only`,
        'if it is nbd-remapper\'s destination, seal the source first (`nbd-remapper seal`); otherwise serve it writable',
      );
    }
    const requestSize = settleRequestSize(options.requestSize, source, destination, io);

    let plan: CopyPlan;
    if (filePlan) plan = filePlan;
    else {
      const whole = wholeDiskPlan(source.size, destination.size);
      if (whole.note) io.note(whole.note);
      plan = whole.plan;
    }
    validateCopyPlan(plan, {
      source: { uri: source.uri, size: source.size, minimumBlockSize: source.blockSize.minimum },
      destination: { uri: destination.uri, size: destination.size, minimumBlockSize: destination.blockSize.minimum },
      // Spelled differently, the same socket (or host) is the same export: overlapping moves must be refused there too.
      sameExport: sourceTarget.exportName === destinationTarget.exportName && (await sameEndpoint(sourceTarget, destinationTarget)),
    });
    if (!destination.canFlush) io.note(`the destination ${destination.uri} offers no FLUSH: the copy cannot make its writes durable`);

    const resumed =
      options.control === undefined ? undefined : await checkpointedCopy(options.control, plan, requestSize, options.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY, io.note);
    if (resumed === undefined && throughRemapper(sourceTarget, destinationTarget)) {
      io.note('copying through nbd-remapper without --control: if the server crashes, this copy cannot resume; give --control with its control socket to checkpoint as it goes');
    }

    const progress = options.progress ? new ProgressDisplay(io.progressStream, 'copy') : undefined;
    if (options.progress) {
      const moves = plan.moves.length;
      io.note(`copying ${formatBytes(planBytes(plan))} in ${moves} move${moves === 1 ? '' : 's'} from ${source.uri} to ${destination.uri} (requests of ${formatBytes(requestSize)}, ${options.requests} in flight)`);
    }
    try {
      return await copyByPlan(source, destination, plan, {
        requestSize,
        maxInFlight: options.requests,
        onProgress: progress ? (done, total) => progress.update(done, total) : undefined,
        skipBytes: resumed?.skipBytes,
        checkpoints: resumed?.checkpoints,
      });
    } finally {
      progress?.end();
    }
  } finally {
    await Promise.allSettled([source.close(), destination?.close()]);
  }
}

/** The remapper's two exports on one server: what `copy` is most often run between. */
function throughRemapper(source: NbdTarget, destination: NbdTarget): boolean {
  return source.exportName === 'source' && destination.exportName === 'destination' && sameServer(source, destination);
}

async function readPlanFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new CopyPlanError(`plan file ${path} ${why}`, 'give --plan the path of a JSON plan file (see docs/copy-plans.md)');
  }
}

/** The request size both exports accept: lowered to the smaller maximum payload, and aligned to both minimum block sizes (a remark when not to the destination's preferred one). */
function settleRequestSize(wanted: number, source: NbdClient, destination: NbdClient, io: RunCopyIo): number {
  let size = wanted;
  for (const end of [source, destination]) {
    if (end.blockSize.maximum < size) {
      io.note(`request size lowered from ${size} to ${end.blockSize.maximum} bytes: the most ${end.uri} accepts in one request`);
      size = end.blockSize.maximum;
    }
  }
  for (const end of [source, destination]) {
    if (size % end.blockSize.minimum !== 0) {
      throw new CopyPlanError(
        `--request-size ${size} is not a multiple of the minimum block size ${end.blockSize.minimum} of ${end.uri}`,
        `use a multiple of ${end.blockSize.minimum}, e.g. --request-size 1M`,
      );
    }
  }
  // Reads of part of a block cost the source little; a write of part of one makes the destination read it first.
  const preferred = destination.blockSize.preferred;
  if (size % preferred !== 0) {
    io.note(
      `requests of ${size} bytes are not a multiple of the preferred block size ${preferred} of ${destination.uri}: ` +
        `a write covering part of a block costs that server a read-modify-write; a multiple of ${preferred}, e.g. --request-size 1M, avoids it`,
    );
  }
  return size;
}
