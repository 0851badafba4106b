import { constants as fsConstants } from 'node:fs';
import { lstat, mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { flock } from 'fs-ext';
import { writeFully } from '../store/positional-io.js';

const MiB = 1024 * 1024;

export interface DemoPartition {
  /** 1-based, as Linux names it (…p1, …p2). */
  number: number;
  /** MBR partition type byte. */
  type: number;
  offset: number;
  length: number;
}

export interface DemoRegion {
  offset: number;
  length: number;
}

export interface DemoDiskLayout {
  size: number;
  sectorSize: number;
  /** Granularity of the pattern: every block in a data region says its own number. */
  blockSize: number;
  /** The MBR's 32-bit disk identifier (what `fdisk -l` prints as "Disk identifier"). */
  diskSignature: number;
  partitions: readonly DemoPartition[];
  /** Where patterned data is written; everything else except the MBR stays a hole. */
  dataRegions: readonly DemoRegion[];
}

/**
 * Small enough to create in a moment, big enough for real filesystems, and
 * mostly holes so that block status has something to show. The partitions
 * are 1 MiB aligned like every partitioning tool makes them.
 */
export const DEMO_DISK: DemoDiskLayout = {
  size: 256 * MiB,
  sectorSize: 512,
  blockSize: 4096,
  diskSignature: 0x6e626472,
  partitions: [
    { number: 1, type: 0x83, offset: 1 * MiB, length: 128 * MiB },
    { number: 2, type: 0x83, offset: 129 * MiB, length: 126 * MiB },
  ],
  dataRegions: [
    { offset: 1 * MiB, length: 4 * MiB },
    { offset: 40 * MiB, length: 2 * MiB },
    { offset: 100 * MiB, length: 1 * MiB },
    { offset: 129 * MiB, length: 4 * MiB },
    { offset: 190 * MiB, length: 1 * MiB },
    { offset: 254 * MiB, length: 1 * MiB },
  ],
};

/** The first line of demo block `index` (its absolute block number on the demo disk). */
export function demoBlockHeader(index: number): string {
  return `nbd-remapper demo block ${index}\n`;
}

/**
 * The content of demo block `index`: its header, then bytes from a generator
 * seeded by the index. A block found anywhere (after a remap, in a spill slot)
 * says where it came from, and a shifted or mixed-up copy never matches.
 */
export function demoBlock(index: number, blockSize = DEMO_DISK.blockSize): Buffer {
  const block = Buffer.alloc(blockSize);
  const headerLength = block.write(demoBlockHeader(index), 'ascii');
  let state = (Math.imul(index + 1, 0x9e3779b1) ^ 0x2545f491) >>> 0 || 1;
  for (let i = headerLength; i < blockSize; i++) {
    // xorshift32: cheap, deterministic, no visible period within a block.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    block[i] = state & 0xff;
  }
  return block;
}

/** CHS address with the 255-head, 63-sector geometry partitioning tools assume; 1023/254/63 beyond its reach. */
function chs(lba: number): [number, number, number] {
  const heads = 255;
  const sectors = 63;
  const cylinder = Math.floor(lba / (heads * sectors));
  if (cylinder > 1023) return [0xfe, 0xff, 0xff];
  const head = Math.floor(lba / sectors) % heads;
  const sector = (lba % sectors) + 1;
  return [head, (sector & 0x3f) | ((cylinder >> 2) & 0xc0), cylinder & 0xff];
}

/** Sector 0 of the demo disk: a classic MBR with the layout's primary partitions. */
export function demoMbr(layout: DemoDiskLayout = DEMO_DISK): Buffer {
  const sector = Buffer.alloc(512);
  sector.writeUInt32LE(layout.diskSignature, 440);
  layout.partitions.forEach((partition, slot) => {
    const entry = 446 + slot * 16;
    const firstLba = partition.offset / layout.sectorSize;
    const sectors = partition.length / layout.sectorSize;
    sector[entry] = 0x00; // not bootable: nothing on the demo disk boots
    sector.set(chs(firstLba), entry + 1);
    sector[entry + 4] = partition.type;
    sector.set(chs(firstLba + sectors - 1), entry + 5);
    sector.writeUInt32LE(firstLba, entry + 8);
    sector.writeUInt32LE(sectors, entry + 12);
  });
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function lockExclusive(handle: FileHandle): Promise<void> {
  return new Promise((resolve, reject) => flock(handle.fd, 'ex', (err) => (err ? reject(err) : resolve())));
}

async function writeAt(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  await writeFully(async (buffer, bufferOffset, length, at) => (await handle.write(buffer, bufferOffset, length, at)).bytesWritten, data, position);
}

async function writeDemoContent(handle: FileHandle, layout: DemoDiskLayout): Promise<void> {
  // Build the image with holes: set the size first, then write only the MBR and the data regions.
  await handle.truncate(0);
  await handle.truncate(layout.size);
  await writeAt(handle, demoMbr(layout), 0);
  for (const region of layout.dataRegions) {
    const content = Buffer.allocUnsafe(region.length);
    for (let at = 0; at < region.length; at += layout.blockSize) {
      demoBlock((region.offset + at) / layout.blockSize, layout.blockSize).copy(content, at);
    }
    await writeAt(handle, content, region.offset);
  }
}

async function syncDirectory(path: string): Promise<void> {
  const directory = await open(path, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/**
 * Creates the demo image at `path` unless something is there already. It is
 * built in PATH.tmp and renamed into place after fsync, so an interrupted run
 * never leaves a half image behind under the real name. Two runs at once
 * serialise on a lock of PATH.tmp; the second finds the image done.
 */
export async function ensureDemoDisk(path: string): Promise<{ path: string; created: boolean }> {
  const target = resolve(path);
  if (await exists(target)) return { path: target, created: false };
  await mkdir(dirname(target), { recursive: true });
  const temporary = `${target}.tmp`;
  // No O_TRUNC: a concurrent creator may hold this file; it is emptied only under the lock.
  const handle = await open(temporary, fsConstants.O_RDWR | fsConstants.O_CREAT, 0o644);
  try {
    await lockExclusive(handle);
    if (await exists(target)) {
      await unlink(temporary).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      return { path: target, created: false };
    }
    await writeDemoContent(handle, DEMO_DISK);
    await handle.sync();
    await rename(temporary, target);
    await syncDirectory(dirname(target));
    return { path: target, created: true };
  } finally {
    await handle.close();
  }
}
