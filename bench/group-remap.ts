/**
 * Issue 3: the ordering engine's cost.
 *
 * - Destination writes with spills: a map that swaps the disk's halves; before
 *   sealing, H = SIZE/2 random bytes are written to `source` (the passthrough
 *   baseline); after sealing, the source's first half is read (released) and
 *   checkpointed (confirmed, so free to overwrite), then the same H bytes are
 *   written to destination [0, H). Their homes (the second half) are unread,
 *   so 64 MiB stay in RAM and the rest spills into the released first half. Same server, same client (nbdcopy -C 1), same bytes.
 * - Source reads after sealing (each releases and records blocks) against
 *   `serve --read-only`, which serves a plain view without the engine.
 * - Whole-disk migration: a map that reverses SIZE/8 chunks (every block moves;
 *   half the disk is held before its home is read), 64 MiB cache; wall time of
 *   seal + `nbd-remapper copy` + finish, against `nbdcopy` between two qemu-nbd
 *   servers on two images (reading and writing the same bytes once).
 */
import { closeSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, MiB, ROUNDS, SIZE } from './config.js';
import type { BenchGroup } from './group.js';
import { copyImage, fillRandom, reversedChunks, type MapExtent } from './images.js';
import { QEMU_NBD, uriOf } from './peers.js';
import { startServer, stopServer, waitForSocket } from './proc.js';
import { Remapper } from './remapper.js';
import { Samples, atLeast, atMost, describeTarget, formatNumber, formatRatio, printTable, progress, verdict } from './table.js';
import { copyBetween, fioRandom, mbPerSecond, readRange, seqRead, seqWrite } from './workloads.js';

const CACHE = '64M';
const MIGRATION_CHUNKS = 8;

const swapHalves = (size: number): MapExtent[] => [
  { destOffset: 0, length: size / 2, diskOffset: size / 2 },
  { destOffset: size / 2, length: size / 2, diskOffset: 0 },
];

interface SpillRun {
  passthrough: number;
  destination: number;
  status: Record<string, unknown>;
}

async function destinationWrites(dir: string, master: string, half: string): Promise<SpillRun> {
  const disk = join(dir, 'spill.img');
  copyImage(master, disk);
  const work = join(dir, 'spill');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const server = await Remapper.start({ disk, dir: work, map: swapHalves(SIZE), cache: CACHE });
  try {
    const H = SIZE / 2;
    const passthrough = mbPerSecond(H, await seqWrite(half, server.source, 1));
    await server.seal();
    await readRange(server.source, 0, H);
    await server.checkpoint();
    const destination = mbPerSecond(H, await seqWrite(half, server.destination, 1));
    const status = await server.status();
    return { passthrough, destination, status };
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nserver log: ${server.log()}`);
  } finally {
    await server.stop();
    rmSync(disk, { force: true });
  }
}

interface MigrationRun {
  seal: number;
  copy: number;
  finish: number;
  status: Record<string, unknown>;
}

/** A partition moved forward over itself by 64 MiB: the common case (making room before it). */
const shiftedForward = (size: number): MapExtent[] => [{ destOffset: 0, length: size - SHIFT_BYTES, diskOffset: SHIFT_BYTES }];
const SHIFT_BYTES = 64 * MiB;

async function migration(dir: string, master: string, map: MapExtent[], verify: boolean): Promise<MigrationRun> {
  const disk = join(dir, 'migrate.img');
  copyImage(master, disk);
  const work = join(dir, 'migrate');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const server = await Remapper.start({ disk, dir: work, map, cache: CACHE });
  let result: MigrationRun;
  try {
    const seal = (await server.seal()).seconds;
    const copy = (await server.copy()).seconds;
    const status = await server.status(); // not timed
    const finish = (await server.finish()).seconds;
    result = { seal, copy, finish, status };
  } catch (err) {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nserver log: ${server.log()}`);
  } finally {
    await server.stop();
  }
  if (verify) verifyLayout(master, disk, map);
  rmSync(disk, { force: true });
  return result;
}

/** After finish the disk is the new layout: each extent's home holds what the source had at that destination offset. */
function verifyLayout(master: string, disk: string, map: MapExtent[]): void {
  const a = openSync(master, 'r');
  const b = openSync(disk, 'r');
  const x = Buffer.alloc(4 * MiB);
  const y = Buffer.alloc(4 * MiB);
  try {
    for (const e of map) {
      for (let at = 0; at < e.length; at += x.length) {
        const n = Math.min(x.length, e.length - at);
        readSync(a, x, 0, n, e.destOffset + at);
        readSync(b, y, 0, n, e.diskOffset + at);
        if (x.compare(y, 0, n, 0, n) !== 0) throw new Error(`migration check failed: disk ${e.diskOffset + at}+${n} differs from source ${e.destOffset + at}`);
      }
    }
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

/** Reading + writing the image once through qemu-nbd; with `flush`, nbdcopy ends with a FLUSH so the copy is durable, as a migration's must be. */
async function qemuBaseline(dir: string, master: string, flush: boolean): Promise<number> {
  const src = join(dir, 'qemu-src.img');
  const dst = join(dir, 'qemu-dst.img');
  copyImage(master, src);
  copyImage(master, dst);
  const a = QEMU_NBD.start(src, join(dir, 'qemu-src.sock'), dir);
  const b = QEMU_NBD.start(dst, join(dir, 'qemu-dst.sock'), dir);
  try {
    await waitForSocket(a);
    await waitForSocket(b);
    return await copyBetween(uriOf(a.socket), uriOf(b.socket), flush);
  } finally {
    await stopServer(a);
    await stopServer(b);
    rmSync(src, { force: true });
    rmSync(dst, { force: true });
  }
}

interface SourceReads {
  plainSeq: number;
  plainRandom: number;
  sealedSeq: number;
  sealedRandom: number;
}

/**
 * The engine's source read path after sealing (every read releases the blocks
 * it covers and records it) against `serve --read-only` (a plain view, no
 * engine). Random reads go first, so most of them release a block.
 */
async function sourceReads(dir: string, master: string): Promise<SourceReads> {
  const plainDisk = join(dir, 'plain.img');
  const sealedDisk = join(dir, 'sealed.img');
  copyImage(master, plainDisk);
  copyImage(master, sealedDisk);
  const work = join(dir, 'sealed');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  const plainSocket = join(dir, 'plain.sock');
  const plain = startServer(process.execPath, [CLI, 'serve', '--disk', plainDisk, '--read-only', '--socket', plainSocket, '--control', join(dir, 'plain-control.sock')], plainSocket);
  const sealed = await Remapper.start({ disk: sealedDisk, dir: work, cache: CACHE });
  try {
    await waitForSocket(plain);
    await sealed.seal();
    const plainRandom = await fioRandom(uriOf(plainSocket), 'randread', SIZE);
    const sealedRandom = await fioRandom(sealed.source, 'randread', SIZE);
    const plainSeq = mbPerSecond(SIZE, await seqRead(uriOf(plainSocket), 1));
    const sealedSeq = mbPerSecond(SIZE, await seqRead(sealed.source, 1));
    return { plainSeq, plainRandom, sealedSeq, sealedRandom };
  } finally {
    await stopServer(plain);
    await sealed.stop();
    rmSync(plainDisk, { force: true });
    rmSync(sealedDisk, { force: true });
  }
}

const num = (status: Record<string, unknown>, key: string): number => (typeof status[key] === 'number' ? (status[key] as number) : NaN);

export const remapGroup: BenchGroup = {
  name: 'remap',
  summary: 'destination writes through the ordering engine with spills, whole-disk migration (issue 3)',
  tools: ['nbdcopy', 'qemu-nbd', 'fio'],
  async run(dir, master) {
    const half = join(dir, 'half.bin');
    fillRandom(half, SIZE / 2);
    const samples = new Samples();
    const notes: string[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      samples.add('qemu', await qemuBaseline(dir, master, false));
      samples.add('qemuDurable', await qemuBaseline(dir, master, true));
      const m = await migration(dir, master, reversedChunks(SIZE, MIGRATION_CHUNKS), round === 1);
      const shifted = await migration(dir, master, shiftedForward(SIZE), round === 1);
      samples.add('migrationShift', shifted.seal + shifted.copy + shifted.finish);
      samples.add('seal', m.seal);
      samples.add('copy', m.copy);
      samples.add('finish', m.finish);
      samples.add('migration', m.seal + m.copy + m.finish);
      const w = await destinationWrites(dir, master, half);
      samples.add('passthrough', w.passthrough);
      samples.add('destination', w.destination);
      samples.add('dest/pass', w.destination / w.passthrough);
      const r = await sourceReads(dir, master);
      samples.add('plainSeq', r.plainSeq);
      samples.add('sealedSeq', r.sealedSeq);
      samples.add('plainRandom', r.plainRandom);
      samples.add('sealedRandom', r.sealedRandom);
      if (round === 1) {
        notes.push(
          `migration (round 1): after copy, before finish: ${num(m.status, 'spilled')} blocks spilled, ${num(m.status, 'heldInRam')} held in RAM, ${num(m.status, 'landed')} landed; disk checked against the expected layout after finish: identical.`,
          `destination writes (round 1): ${num(w.status, 'spilled')} blocks spilled, ${num(w.status, 'heldInRam')} held in RAM (${formatNumber(num(w.status, 'heldInRamBytes') / MiB)} MiB), ${num(w.status, 'landed')} landed, ENOSPC ${num(w.status, 'enospc')}.`,
        );
      }
      progress(`remap: round ${round}/${ROUNDS} done`);
    }
    const writeRatio = samples.median('destination') / samples.median('passthrough');
    const migrationRatio = samples.median('migration') / samples.median('qemu');
    const shiftRatio = samples.median('migrationShift') / samples.median('qemu');
    const durableRatio = samples.median('migration') / samples.median('qemuDurable');
    const durableShiftRatio = samples.median('migrationShift') / samples.median('qemuDurable');
    const mib = SIZE / MiB;
    const header = ['measure', 'ours', 'baseline', 'ratio', 'target', 'met'];
    const rows = [
      [
        `destination writes, ${mib / 2} MiB, cache ${CACHE}, spilling [MB/s] vs source passthrough writes (unsealed), nbdcopy -C 1`,
        formatNumber(samples.median('destination')),
        formatNumber(samples.median('passthrough')),
        formatRatio(writeRatio),
        describeTarget(atLeast(0.8)),
        verdict(writeRatio, atLeast(0.8)),
      ],
      [
        `whole-disk migration, ${mib} MiB, reversed ${MIGRATION_CHUNKS} chunks, cache ${CACHE}: seal+copy+finish [s] vs nbdcopy qemu-nbd→qemu-nbd`,
        formatNumber(samples.median('migration')),
        formatNumber(samples.median('qemu')),
        formatRatio(migrationRatio),
        describeTarget(atMost(1.5)),
        verdict(migrationRatio, atMost(1.5)),
      ],
      [
        `whole-disk migration, ${mib} MiB, partition shifted forward ${SHIFT_BYTES / MiB} MiB, cache ${CACHE}: seal+copy+finish [s] vs the same baseline`,
        formatNumber(samples.median('migrationShift')),
        formatNumber(samples.median('qemu')),
        formatRatio(shiftRatio),
        describeTarget(atMost(1.5)),
        verdict(shiftRatio, atMost(1.5)),
      ],
      [
        `  the same two migrations vs nbdcopy --flush qemu-nbd→qemu-nbd (durable at the end, as a migration is) [s]: reversed / shifted`,
        `${formatNumber(samples.median('migration'))} / ${formatNumber(samples.median('migrationShift'))}`,
        formatNumber(samples.median('qemuDurable')),
        `${formatRatio(durableRatio)} / ${formatRatio(durableShiftRatio)}`,
        '—',
        '—',
      ],
    ];
    const seqRatio = samples.median('sealedSeq') / samples.median('plainSeq');
    const randomRatio = samples.median('sealedRandom') / samples.median('plainRandom');
    rows.push(
      [
        `sealed source, seq read 1 conn (releasing) [MB/s] vs serve --read-only`,
        formatNumber(samples.median('sealedSeq')),
        formatNumber(samples.median('plainSeq')),
        formatRatio(seqRatio),
        '—',
        '—',
      ],
      [
        `sealed source, 4K random read QD16 (releasing) [IOPS] vs serve --read-only`,
        formatNumber(samples.median('sealedRandom')),
        formatNumber(samples.median('plainRandom')),
        formatRatio(randomRatio),
        '—',
        '—',
      ],
    );
    printTable(`Ordering engine (medians of ${ROUNDS} interleaved rounds)`, header, rows, [
      `migration split (medians): seal ${formatNumber(samples.median('seal'))} s, copy ${formatNumber(samples.median('copy'))} s, finish ${formatNumber(samples.median('finish'))} s (each includes starting the CLI, as a person runs it).`,
      `per-round destination/passthrough ratios: ${samples.all('dest/pass').map(formatRatio).join(', ')}.`,
      ...notes,
    ]);
  },
};
