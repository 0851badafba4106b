// Whether the RAM the caches take at seal fits this machine (or its container): found at start, not by the OOM killer at seal or hours in.
import { totalmem } from 'node:os';
import { formatBytes } from '../format/bytes.js';
import { HELD_BLOCK_BOOKKEEPING_BYTES } from '../remap/defaults.js';
import { UserError } from './user-error.js';

/** What the server takes besides its caches: Node itself, code, bookkeeping (the RSS budget of DESIGN's 1 TiB test). */
export const SERVER_BASE_BYTES = 96 * 1024 * 1024;

/** RAM this process may use: the machine's, or less under a cgroup limit (containers, systemd MemoryMax). */
export function memoryLimitBytes(): { bytes: number; what: string } {
  const machine = totalmem();
  // process.constrainedMemory: Node 19.6+; 0 or undefined when there is no limit (older Nodes report 2^64-ish).
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (constrained !== undefined && constrained > 0 && constrained < machine) return { bytes: constrained, what: "this process's cgroup memory limit" };
  return { bytes: machine, what: "this machine's memory" };
}

/**
 * Refuses caches that cannot fit at all; returns a warning for caches that
 * leave little room (undefined when they fit well).
 */
export function checkMemoryFit(cacheBytes: number, revisitCacheBytes: number, blockSize: number, limit = memoryLimitBytes()): string | undefined {
  const bookkeeping = Math.ceil(cacheBytes / blockSize) * HELD_BLOCK_BOOKKEEPING_BYTES;
  const need = cacheBytes + revisitCacheBytes + SERVER_BASE_BYTES + bookkeeping;
  const [needText, limitText] = apart(need, limit.bytes);
  const sizes =
    `--cache ${formatBytes(cacheBytes)} and --revisit-cache ${formatBytes(revisitCacheBytes)} (plus ~${formatBytes(SERVER_BASE_BYTES)} for the server ` +
    `and ~${formatBytes(bookkeeping)} to keep track of a full cache of ${blockSize}-byte blocks) need ${needText} of RAM`;
  if (need > limit.bytes) {
    throw new UserError(
      `${sizes}, more than ${limit.what} (${limitText}): seal takes that memory, and the kernel would kill the server for it`,
      'give a smaller --cache: destination data beyond it spills into blocks already read, and only what neither holds fails with ENOSPC' +
        (bookkeeping * 10 > cacheBytes ? `; or a larger --block-size (each block held costs ~${HELD_BLOCK_BOOKKEEPING_BYTES} bytes besides its data)` : ''),
      2,
    );
  }
  if (need > limit.bytes * 0.75) {
    return `${sizes}, ${Math.round((need / limit.bytes) * 100)}% of ${limit.what} (${limitText}); with the clients' own memory and the page cache that may not fit — consider a smaller --cache`;
  }
  return undefined;
}

/** Two sizes written so that different ones read differently ("need 16.3 GiB, more than 16.0 GiB", not "16 GiB … 16 GiB"). */
function apart(a: number, b: number): [string, string] {
  const plain: [string, string] = [formatBytes(a), formatBytes(b)];
  if (a === b || plain[0] !== plain[1]) return plain;
  const [name, size] = Math.max(a, b) >= 2 ** 30 ? ['GiB', 2 ** 30] : ['MiB', 2 ** 20];
  return [`${(a / size).toFixed(1)} ${name}`, `${(b / size).toFixed(1)} ${name}`];
}
