// Reading the --map file: small JSON, read with a bound so that a disk image
// or a device given by mistake is refused at once instead of read into memory.
import { open, type FileHandle } from 'node:fs/promises';
import { formatBytes } from '../format/bytes.js';
import { MAX_MAP_EXTENTS, RemapMap } from '../remap/index.js';
import { UserError } from './user-error.js';

/** Larger than any map of MAX_MAP_EXTENTS extents written out with indentation. */
export const MAX_MAP_FILE_BYTES = 32 * 1024 * 1024;

const SEE_README = 'a JSON file, see README "Map files"';

function cannotRead(path: string, err: unknown): UserError {
  const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new UserError(`cannot read the map file ${path}: ${why}`, `check the path given to --map (${SEE_README})`);
}

/** The map file's text, read a piece at a time up to the bound; pipes (`--map <(…)`, `/dev/stdin`) work too. */
async function readBounded(path: string): Promise<string> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw cannotRead(path, err);
  }
  try {
    const pieces: Buffer[] = [];
    let total = 0;
    for (;;) {
      const piece = Buffer.allocUnsafe(64 * 1024);
      const { bytesRead } = await file.read(piece, 0, piece.length, null);
      if (bytesRead === 0) break;
      pieces.push(piece.subarray(0, bytesRead));
      total += bytesRead;
      if (total > MAX_MAP_FILE_BYTES) {
        throw new UserError(
          `the map file ${path} is larger than ${formatBytes(MAX_MAP_FILE_BYTES)}, more than a map of the most extents supported (${MAX_MAP_EXTENTS}) needs`,
          `check that --map names the JSON map and --disk the disk; a map places partitions or other large ranges, a few extents each (${SEE_README})`,
        );
      }
    }
    return Buffer.concat(pieces, total).toString('utf8');
  } catch (err) {
    throw err instanceof UserError ? err : cannotRead(path, err);
  } finally {
    await file.close();
  }
}

export async function loadMapFile(path: string, diskSize: number, blockSize: number): Promise<RemapMap> {
  return RemapMap.parse(await readBounded(path), diskSize, blockSize);
}
