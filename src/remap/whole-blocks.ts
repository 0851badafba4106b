/**
 * The blocks a byte range covers entirely, [start, end) (empty when none):
 * a partly covered block is not the client's to release, free or zero. A
 * view's last block may be short, so a range reaching the view's end covers
 * it entirely.
 */
export function wholeBlocks(offset: number, length: number, blockSize: number, viewSize: number): { start: number; end: number } {
  const end = offset + length;
  return {
    start: Math.ceil(offset / blockSize),
    end: end === viewSize ? Math.ceil(end / blockSize) : Math.floor(end / blockSize),
  };
}
