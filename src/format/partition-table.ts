/**
 * The partitions an MBR or GPT lists, in bytes: enough to tell which parts of
 * a disk belong to no partition. Read-only and forgiving: a table that does
 * not parse is "no table" (the disk may hold a filesystem or LVM directly),
 * never an error.
 */
export interface Partition {
  start: number;
  length: number;
}

export interface PartitionTable {
  kind: 'mbr' | 'gpt';
  partitions: Partition[];
}

/** Reads `length` bytes at `offset` (short at the end of the disk). */
export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

const MBR_SIGNATURE = 0xaa55;
const GPT_PROTECTIVE = 0xee;
const GPT_SIGNATURE = 'EFI PART';
/** Bounds on the entry array a header may claim: the spec's minimum array is 16 KiB, real ones 128 × 128 bytes. */
const MAX_GPT_ENTRIES = 1024;
const MAX_GPT_ENTRY_SIZE = 4096;

export async function readPartitionTable(read: ReadAt, diskSize: number): Promise<PartitionTable | undefined> {
  const mbr = await read(0, 512);
  if (mbr.length < 512 || mbr.readUInt16LE(510) !== MBR_SIGNATURE) return undefined;
  const entries = [0, 1, 2, 3].map((i) => {
    const at = 446 + 16 * i;
    return { type: mbr[at + 4], startLba: mbr.readUInt32LE(at + 8), sectors: mbr.readUInt32LE(at + 12) };
  });
  if (entries.some((e) => e.type === GPT_PROTECTIVE)) return readGpt(read, diskSize);
  // An extended partition (its logical ones chained inside) counts as partitioned, whole.
  const partitions = entries
    .filter((e) => e.type !== 0 && e.sectors > 0)
    .map((e) => ({ start: e.startLba * 512, length: e.sectors * 512 }))
    .filter((p) => p.start > 0 && p.start + p.length <= diskSize);
  return { kind: 'mbr', partitions: sortByStart(partitions) };
}

async function readGpt(read: ReadAt, diskSize: number): Promise<PartitionTable | undefined> {
  // The header sits in LBA 1: at 512 on 512-byte-sector disks, at 4096 on 4Kn ones.
  for (const sector of [512, 4096]) {
    const header = await read(sector, 92);
    if (header.length < 92 || header.toString('latin1', 0, 8) !== GPT_SIGNATURE) continue;
    const entriesLba = Number(header.readBigUInt64LE(72));
    const count = header.readUInt32LE(80);
    const size = header.readUInt32LE(84);
    if (count > MAX_GPT_ENTRIES || size < 128 || size > MAX_GPT_ENTRY_SIZE || entriesLba * sector >= diskSize) return undefined;
    const array = await read(entriesLba * sector, count * size);
    const partitions: Partition[] = [];
    for (let i = 0; (i + 1) * size <= array.length; i++) {
      const at = i * size;
      if (array.subarray(at, at + 16).every((b) => b === 0)) continue; // unused entry
      const first = Number(array.readBigUInt64LE(at + 32));
      const last = Number(array.readBigUInt64LE(at + 40));
      const p = { start: first * sector, length: (last - first + 1) * sector };
      if (last >= first && p.start > 0 && p.start + p.length <= diskSize) partitions.push(p);
    }
    return { kind: 'gpt', partitions: sortByStart(partitions) };
  }
  return undefined;
}

function sortByStart(partitions: Partition[]): Partition[] {
  return partitions.sort((a, b) => a.start - b.start);
}

/** The ranges of [0, diskSize) none of `partitions` (in any order, overlapping or not) covers, in order. */
export function rangesOutside(partitions: readonly Partition[], diskSize: number): Partition[] {
  const gaps: Partition[] = [];
  let at = 0;
  for (const p of sortByStart([...partitions])) {
    if (p.start > at) gaps.push({ start: at, length: p.start - at });
    at = Math.max(at, p.start + p.length);
  }
  if (at < diskSize) gaps.push({ start: at, length: diskSize - at });
  return gaps;
}
