import { formatBytes } from '../format/bytes.js';
import { rangesOutside, readPartitionTable, type Partition, type ReadAt } from '../format/partition-table.js';

/**
 * Space of the old disk that no partition covers is read by no copy, so it is
 * never released: new data whose home lies there waits in RAM, then in spill
 * slots, until finish — the common case of a disk grown for its new layout.
 * `fstrim` cannot declare it free (it covers filesystems only); a TRIM of it
 * on `source` before sealing can (`blkdiscard`), and then such data lands at
 * once. This finds those ranges from the old partition table, within the
 * homes of destination blocks, and says how to discard them.
 */

/** Pieces smaller than this are the table itself, alignment gaps, GPT's backup: not worth a command. */
const MIN_PIECE = 1024 * 1024;
/** The first MiB holds the MBR, GPT's header and entries (and the alignment gap); GPT's backup is in the last one. */
const TABLE_AREA = 1024 * 1024;
/** Below this in all, the hint would be noise. */
const MIN_TOTAL = 16 * 1024 * 1024;
/** Commands printed at most; the rest are counted. */
const MAX_COMMANDS = 8;

export interface UnpartitionedSpace {
  kind: 'mbr' | 'gpt';
  /** Block-aligned ranges outside every partition that are homes of destination blocks. */
  ranges: Partition[];
  total: number;
}

export async function findUnpartitionedSpace(
  read: ReadAt,
  diskSize: number,
  homes: ReadonlyArray<{ diskOffset: number; length: number }>,
  blockSize: number,
  /** Ranges declared free already (a restart after blkdiscard): not offered again. */
  declaredFree: ReadonlyArray<Partition> = [],
): Promise<UnpartitionedSpace | undefined> {
  const table = await readPartitionTable(read, diskSize);
  if (table === undefined) return undefined;
  const ranges: Partition[] = [];
  // The table's own sectors are read again (a partition scan of source): never offered for discarding.
  const tableArea = { start: 0, length: TABLE_AREA };
  const backupArea = table.kind === 'gpt' ? [{ start: diskSize - TABLE_AREA, length: TABLE_AREA }] : [];
  for (const gap of rangesOutside([tableArea, ...table.partitions, ...backupArea, ...declaredFree], diskSize)) {
    for (const home of homes) {
      // Only blocks the range covers entirely are marked free by a TRIM.
      const start = Math.ceil(Math.max(gap.start, home.diskOffset) / blockSize) * blockSize;
      const end = Math.floor(Math.min(gap.start + gap.length, home.diskOffset + home.length) / blockSize) * blockSize;
      if (end - start >= MIN_PIECE) ranges.push({ start, length: end - start });
    }
  }
  ranges.sort((a, b) => a.start - b.start);
  const total = ranges.reduce((sum, r) => sum + r.length, 0);
  return total >= MIN_TOTAL ? { kind: table.kind, ranges, total } : undefined;
}

/** What to tell a person before mounting and sealing; `sourceDevice` is where the banner's attach command puts source. */
export function unpartitionedHintLines(space: UnpartitionedSpace, sourceDevice: string): string[] {
  const lines = [
    `hint: ${formatBytes(space.total)} of the old disk lies outside its partitions (the ${space.kind.toUpperCase()} table), where new data would wait ` +
      `(RAM, then spill) until finish: no copy reads it. If nothing there is needed, discard it on source once attached and BEFORE mounting anything ` +
      `from it (blkdiscard opens the whole device exclusively: a mounted partition makes it fail with EBUSY), and new data there lands at once:`,
  ];
  for (const r of space.ranges.slice(0, MAX_COMMANDS)) lines.push(`  blkdiscard -o ${r.start} -l ${r.length} ${sourceDevice}`);
  const more = space.ranges.length - MAX_COMMANDS;
  if (more > 0) lines.push(`  … and ${more} more range(s): \`sfdisk -F ${sourceDevice}\` lists the space outside the partitions`);
  return lines;
}
