import { DiskNoProgressError } from './disk-errors.js';

/** One pread/pwrite-like call: returns how many bytes it moved, which may be fewer than asked. */
export type PositionalIo = (buffer: Buffer, bufferOffset: number, length: number, position: number) => Promise<number>;
export type PositionalIoSync = (buffer: Buffer, bufferOffset: number, length: number, position: number) => number;

/**
 * Node refuses lengths above 2 GiB - 1 in one call and Linux moves at most
 * 0x7ffff000 bytes per syscall anyway, so bigger requests are split.
 */
export const MAX_IO_PER_CALL = 1 << 30;

/**
 * Fills `buffer` from `position` on. The kernel may return fewer bytes than
 * asked (signals, page-cache boundaries, huge requests), so it loops; a read
 * of 0 bytes is end of file and the rest reads as zeroes. Returns how many
 * bytes came from the file (the rest is that zero fill).
 */
export async function readFully(read: PositionalIo, buffer: Buffer, position: number): Promise<number> {
  let done = 0;
  while (done < buffer.length) {
    const n = await read(buffer, done, Math.min(buffer.length - done, MAX_IO_PER_CALL), position + done);
    if (n === 0) {
      buffer.fill(0, done);
      return done;
    }
    done += n;
  }
  return done;
}

export function readFullySync(read: PositionalIoSync, buffer: Buffer, position: number): number {
  let done = 0;
  while (done < buffer.length) {
    const n = read(buffer, done, Math.min(buffer.length - done, MAX_IO_PER_CALL), position + done);
    if (n === 0) {
      buffer.fill(0, done);
      return done;
    }
    done += n;
  }
  return done;
}

/** Writes all of `data` at `position`, looping on short writes. */
export async function writeFully(write: PositionalIo, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const length = Math.min(data.length - done, MAX_IO_PER_CALL);
    const n = await write(data, done, length, position + done);
    if (n <= 0) throw new DiskNoProgressError(position + done, length);
    done += n;
  }
}

/** One pwritev-like call: writes the buffers back to back from `position`, returns the bytes moved (maybe fewer). */
export type PositionalIoV = (buffers: readonly Buffer[], position: number) => Promise<number>;

/** Linux's IOV_MAX: more buffers than this in one pwritev fail with EINVAL. */
export const MAX_BUFFERS_PER_CALL = 1024;

/**
 * Writes `buffers` back to back from `position`, as few calls as the limits
 * allow, looping on short writes (resuming inside a buffer when one was cut).
 */
export async function writevFully(writev: PositionalIoV, buffers: readonly Buffer[], position: number): Promise<void> {
  let queue = buffers.filter((b) => b.length > 0);
  let at = position;
  while (queue.length > 0) {
    const batch: Buffer[] = [];
    let bytes = 0;
    for (const b of queue) {
      if (batch.length === MAX_BUFFERS_PER_CALL || (batch.length > 0 && bytes + b.length > MAX_IO_PER_CALL)) break;
      batch.push(b);
      bytes += b.length;
    }
    if (batch.length === 1 && bytes > MAX_IO_PER_CALL) batch[0] = batch[0].subarray(0, MAX_IO_PER_CALL);
    const asked = Math.min(bytes, MAX_IO_PER_CALL);
    const n = await writev(batch, at);
    if (n <= 0) throw new DiskNoProgressError(at, asked);
    at += n;
    // Drop what was written: whole buffers, then the written head of a cut one.
    let left = n;
    let i = 0;
    while (i < queue.length && left >= queue[i].length) left -= queue[i++].length;
    queue = queue.slice(i);
    if (left > 0) queue[0] = queue[0].subarray(left);
  }
}
