import { addon } from './addon.js';

/** What the page cache gave: `bytes` from the start of the buffer; `endOfFile` when the file ends after them. */
export interface CachedRead {
  bytes: number;
  endOfFile: boolean;
}

/** preadv2(RWF_NOWAIT) is offered by this build (the addon loaded). */
export const canReadWithoutWaiting: boolean = !(addon instanceof Error);

/**
 * Reads into `buffer` from `position` only what the page cache holds, never
 * waiting for the device: a prefix of the buffer, possibly empty. Loops on
 * short counts while the kernel keeps giving. Throws what preadv2 reports
 * (EOPNOTSUPP for a file system without non-blocking buffered reads, EIO,
 * EBADF), and Error when the addon is missing (check canReadWithoutWaiting).
 */
export function readCached(fd: number, buffer: Uint8Array, position: number): CachedRead {
  if (addon instanceof Error) throw addon;
  if (!Number.isSafeInteger(position) || position < 0) throw new RangeError(`position out of range: ${position}`);
  let bytes = 0;
  while (bytes < buffer.length) {
    const got = addon.preadNoWait(fd, bytes === 0 ? buffer : buffer.subarray(bytes), position + bytes);
    if (got < 0) break; // the rest is not cached
    if (got === 0) return { bytes, endOfFile: true };
    bytes += got;
  }
  return { bytes, endOfFile: false };
}
