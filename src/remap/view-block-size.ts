import type { BlockSizeConstraints } from 'nbd-protocol-ts';

/** Both views accept any alignment; B is what they prefer (a smaller write costs a read-modify-write). */
export function viewBlockSize(blockSize: number): BlockSizeConstraints {
  return { minimum: 1, preferred: blockSize, maximum: 32 * 1024 * 1024 };
}
