// Reading the --map file: small JSON, read with a bound so that a disk image
// or a device given by mistake is refused at once instead of read into memory.
import { open, type FileHandle } from 'node:fs/promises';
import { formatBytes } from '../format/bytes.js';
import { MAX_MAP_EXTENTS, RemapMap } from '../remap/index.js';
import { UserError } from './user-error.js';

/** Larger than any map of MAX_MAP_EXTENTS extents written out with indentation. */
export const MAX_MAP_FILE_BYTES = 32 * 1024 * 1024;

const SEE_README = 'a JSON file, see README "Map files"';

/** The map file's text; pipes (`--map <(…)`, `/dev/stdin`) work too. */
async function readBounded(path: string): Promise<string> {
  let file: FileHandle;
  try {
    file = await open(path, 'r');
  } catch (err) {
    throw new UserError(`cannot read the map file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, `check the path given to --map (${SEE_README})`);
  }
  try {
    const buffer = Buffer.allocUnsafe(MAX_MAP_FILE_BYTES + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, null);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled > MAX_MAP_FILE_BYTES) {
        throw new UserError(
          `the map file ${path} is larger than ${formatBytes(MAX_MAP_FILE_BYTES)}, more than a map of the most extents supported (${MAX_MAP_EXTENTS}) needs`,
          `check that --map names the JSON map and --disk the disk; a map places partitions or other large ranges, a few extents each (${SEE_README})`,
        );
      }
    }
    return buffer.toString('utf8', 0, filled);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read the map file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, `check the path given to --map (${SEE_README})`);
  } finally {
    await file.close();
  }
}

export async function loadMapFile(path: string, diskSize: number, blockSize: number): Promise<RemapMap> {
  return RemapMap.parse(await readBounded(path), diskSize, blockSize);
}
