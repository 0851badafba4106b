import { NbdClient } from '../nbd-client.js';
import { formatBytes } from '../../format/bytes.js';
import { ProgressDisplay, type ProgressStream } from '../../format/progress-display.js';
import { ManifestError, formatManifest, parseManifest } from './digest-manifest.js';
import { exportDigests } from './export-digests.js';
import { readRecord, RecordWriter } from './record-file.js';

export interface RunVerifyOptions {
  /** The export to read: before finish, `destination`; after it, `destination` again (now the disk itself). */
  uri: string;
  /** Write a record of the export here … */
  record?: string;
  /** … or compare the export with a record written before. */
  against?: string;
  chunkBytes: number;
  requests: number;
  progress?: ProgressStream;
}

/** Verify could not read what it compares: the export's limits, or the server's errors. The CLI prints `fix`. */
export class VerifyFailure extends Error {
  override readonly name = 'VerifyFailure';
  constructor(
    message: string,
    readonly fix: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A range of the export whose bytes differ from the record. */
export interface Mismatch {
  offset: number;
  length: number;
}

export type VerifyOutcome =
  | { kind: 'recorded'; size: number; chunks: number; path: string }
  | { kind: 'identical'; size: number; chunks: number }
  | { kind: 'differs'; size: number; chunks: number; mismatches: Mismatch[] };

/**
 * G6 as a person checks it: record what `destination` serves before
 * `finish`, and compare with what it serves afterwards, when it is a plain
 * view of the disk. Equal records mean the disk holds, byte for byte, what
 * the new layout's filesystems were written with.
 */
export async function runVerify(options: RunVerifyOptions): Promise<VerifyOutcome> {
  const against = options.against === undefined ? undefined : parseManifest(await readRecord(options.against), options.against);
  const recording = against === undefined ? await RecordWriter.open(options.record as string) : undefined;
  let client: NbdClient;
  try {
    client = await NbdClient.connect(options.uri);
  } catch (err) {
    await recording?.abandon();
    throw err;
  }
  try {
    const chunkBytes = against?.chunkBytes ?? options.chunkBytes;
    if (against !== undefined && against.size !== client.size) {
      throw new ManifestError(
        `${options.uri} has ${client.size} bytes, the record ${options.against} was made of ${against.size}`,
        'compare the export the record was made of (destination, before finish) with the same export after it',
      );
    }
    const { minimum, maximum } = client.blockSize;
    if (chunkBytes > maximum || chunkBytes % minimum !== 0) {
      const limit = chunkBytes > maximum ? `more than the ${formatBytes(maximum)} it takes in one request` : `not a multiple of its ${minimum}-byte minimum block size`;
      throw new VerifyFailure(
        `${options.uri} cannot be read in chunks of ${formatBytes(chunkBytes)}: ${limit}`,
        against === undefined
          ? `give a --chunk-size of at most ${Math.floor(maximum / minimum) * minimum} bytes that is a multiple of ${minimum}, e.g. 1M (the default)`
          : 'compare with the export the record was made of',
      );
    }
    const progress = options.progress === undefined ? undefined : new ProgressDisplay(options.progress, 'verify');
    const digests = await exportDigests(client, chunkBytes, options.requests, (done, total) => progress?.update(done, total)).catch((err: unknown) => {
      if (err instanceof Error && typeof (err as { fix?: unknown }).fix === 'string') throw err;
      throw new VerifyFailure(
        `reading ${options.uri} failed: ${err instanceof Error ? err.message : String(err)}`,
        "the server could not read its disk there (its log says why, e.g. a failing disk): nothing was compared; verify again once it reads",
        { cause: err },
      );
    });
    progress?.end();
    const size = client.size;
    if (recording !== undefined) {
      await recording.commit(formatManifest({ size, chunkBytes, digests }));
      return { kind: 'recorded', size, chunks: digests.length, path: recording.path };
    }
    if (against === undefined) throw new Error('verify: neither a record to write nor one to compare with');
    const mismatches: Mismatch[] = [];
    digests.forEach((digest, i) => {
      if (digest.equals(against.digests[i])) return;
      const offset = i * chunkBytes;
      const length = Math.min(chunkBytes, size - offset);
      const last = mismatches[mismatches.length - 1];
      if (last !== undefined && last.offset + last.length === offset) last.length += length;
      else mismatches.push({ offset, length });
    });
    return mismatches.length === 0 ? { kind: 'identical', size, chunks: digests.length } : { kind: 'differs', size, chunks: digests.length, mismatches };
  } catch (err) {
    await recording?.abandon();
    throw err;
  } finally {
    await client.close();
  }
}
