import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readSync, truncateSync, writeFileSync } from 'node:fs';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { rangesOutside, readPartitionTable, type ReadAt } from '../../../src/format/partition-table.js';
import { findUnpartitionedSpace, unpartitionedHintLines } from '../../../src/cli/unpartitioned-hint.js';
import { scratchDir } from '../../helpers/scratch.js';

/** Partition tables written by sfdisk (util-linux), the tool a person uses, and read back. */
const MiB = 1024 * 1024;
let dir: ReturnType<typeof scratchDir>;
beforeEach(() => {
  dir = scratchDir('nbd-remapper-ptable-');
});
afterEach(() => dir.cleanup());

function imageWith(script: string, size: number): { path: string; read: ReadAt } {
  const path = dir.file(`disk-${Math.random().toString(36).slice(2)}.img`);
  writeFileSync(path, '');
  truncateSync(path, size);
  execFileSync('sfdisk', ['-q', path], { input: script, timeout: 20_000 });
  return { path, read: fileReader(path) };
}

function fileReader(path: string): ReadAt {
  return async (offset, length) => {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(length);
      return b.subarray(0, readSync(fd, b, 0, length, offset));
    } finally {
      closeSync(fd);
    }
  };
}

it.each([
  {
    what: 'a GPT: partitions in bytes, in order, whatever the order of the entries',
    script: 'label: gpt\nstart=100000, size=20000, type=L\nstart=2048, size=65536, type=L\n',
    kind: 'gpt',
    sectors: [[2048, 65536], [100000, 20000]],
  },
  {
    what: 'an MBR; an extended partition counts whole (its logical ones live inside it)',
    script: 'label: dos\nstart=2048, size=65536, type=83\nstart=100000, size=200000, type=5\nstart=102048, size=50000, type=83\n',
    kind: 'mbr',
    sectors: [[2048, 65536], [100000, 200000]],
  },
])('reads $what', async ({ script, kind, sectors }) => {
  const size = 256 * MiB;
  const { read } = imageWith(script, size);
  expect(await readPartitionTable(read, size)).toEqual({ kind, partitions: sectors.map(([start, count]) => ({ start: start * 512, length: count * 512 })) });
});

// sfdisk writes a 4Kn table only onto a device with 4096-byte sectors: a loop device made so (root, as CI is).
const canAttachLoop =
  process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], { timeout: 10_000 }).status === 0;

it.runIf(canAttachLoop)('reads a GPT of a disk with 4096-byte sectors (its header in LBA 1 at 4096)', async () => {
  const size = 256 * MiB;
  const path = dir.file('4kn.img');
  writeFileSync(path, '');
  truncateSync(path, size);
  const device = execFileSync('losetup', ['--find', '--show', '--sector-size', '4096', path], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    execFileSync('sfdisk', ['-q', device], { input: 'label: gpt\nstart=256, size=8192, type=L\n', timeout: 20_000, stdio: 'pipe' }); // its re-read fails on a loop device without partscan: said on stderr, exit 0
  } finally {
    execFileSync('losetup', ['--detach', device], { timeout: 20_000 });
  }
  expect(await readPartitionTable(fileReader(path), size)).toEqual({ kind: 'gpt', partitions: [{ start: 256 * 4096, length: 8192 * 4096 }] });
});


it('finds no table on a disk without one, or with a filesystem straight on it', async () => {
  const size = 64 * MiB;
  const bare = dir.file('bare.img');
  writeFileSync(bare, '');
  truncateSync(bare, size);
  expect(await readPartitionTable(fileReader(bare), size)).toBeUndefined();
  execFileSync('mkfs.ext4', ['-q', '-F', bare], { timeout: 60_000 });
  expect(await readPartitionTable(fileReader(bare), size)).toBeUndefined();
});

it('lists the ranges outside the partitions, overlapping or unordered ones included', () => {
  expect(rangesOutside([], 100)).toEqual([{ start: 0, length: 100 }]);
  expect(
    rangesOutside(
      [
        { start: 60, length: 10 },
        { start: 10, length: 20 },
        { start: 25, length: 10 },
      ],
      100,
    ),
  ).toEqual([
    { start: 0, length: 10 },
    { start: 35, length: 25 },
    { start: 70, length: 30 },
  ]);
  expect(rangesOutside([{ start: 0, length: 100 }], 100)).toEqual([]);
});

it('offers the space outside the partitions that destination homes use, block-aligned, never the table areas', async () => {
  const size = 256 * MiB;
  // One partition from 1 MiB to 65 MiB; the rest of the disk is outside.
  const { read } = imageWith('label: gpt\nstart=2048, size=131072, type=L\n', size);
  const whole = await findUnpartitionedSpace(read, size, [{ diskOffset: 0, length: size }], 4096);
  // Not the first MiB (MBR, GPT header and entries), not the last (GPT's backup).
  expect(whole).toEqual({ kind: 'gpt', ranges: [{ start: 65 * MiB, length: size - 66 * MiB }], total: size - 66 * MiB });
  expect(unpartitionedHintLines(whole!, '/dev/nbd0')).toEqual([
    expect.stringMatching(/^hint: 190 MiB of the old disk lies outside its partitions \(the GPT table\), where new data would wait/),
    `  blkdiscard -o ${65 * MiB} -l ${size - 66 * MiB} /dev/nbd0`,
  ]);
  // Only where destination blocks have their homes, and only whole blocks of 64 KiB.
  const homes = [
    { diskOffset: 100 * MiB + 1000, length: 40 * MiB },
    { diskOffset: 0, length: 64 * MiB },
  ];
  const some = await findUnpartitionedSpace(read, size, homes, 65536);
  expect(some?.ranges).toEqual([{ start: 100 * MiB + 65536, length: 40 * MiB - 65536 }]);
  // Too little to be worth saying.
  expect(await findUnpartitionedSpace(read, size, [{ diskOffset: 70 * MiB, length: 8 * MiB }], 4096)).toBeUndefined();
});

it('counts the ranges it does not print', () => {
  const ranges = Array.from({ length: 11 }, (_, i) => ({ start: (i + 1) * 100 * MiB, length: 2 * MiB }));
  const lines = unpartitionedHintLines({ kind: 'mbr', ranges, total: 22 * MiB }, '/dev/nbd0');
  expect(lines).toHaveLength(1 + 8 + 1);
  expect(lines.at(-1)).toBe('  … and 3 more range(s): `sfdisk -F /dev/nbd0` lists the space outside the partitions');
});
