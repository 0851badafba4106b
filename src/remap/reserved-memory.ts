/**
 * Memory the caches take when the source is sealed, rather than page by page
 * while destination data pours in. A first write to a fresh page costs a page
 * fault (on virtual machines of this kind ~14 µs per 4 KiB, a third of the
 * CPU a destination write burst spent); taking the pages up front moves that
 * cost out of the copy, and a machine that cannot give the memory shows it at
 * seal, not to the OOM killer in the middle of a migration.
 */

const PAGE_BYTES = 4096;
/** Between turns of the event loop: a slice short enough (~15 ms of page faults on this kind of VM) that other connections are served meanwhile (G9). */
const BYTES_PER_TURN = 4 * 1024 * 1024;

/** A buffer of `bytes` whose pages the kernel has backed already: one byte per page is written now. */
export function touchedBuffer(bytes: number): Buffer {
  const buffer = Buffer.allocUnsafeSlow(bytes);
  for (let at = 0; at < bytes; at += PAGE_BYTES) buffer[at] = 0;
  return buffer;
}

/**
 * Calls `takeOne` (which allocates one piece and returns its size, or 0 when
 * there is nothing left to take) until it returns 0, yielding to the event
 * loop after every BYTES_PER_TURN. Returns the bytes taken.
 */
export async function reserveInTurns(takeOne: () => number): Promise<number> {
  let total = 0;
  for (;;) {
    let inTurn = 0;
    while (inTurn < BYTES_PER_TURN) {
      const taken = takeOne();
      if (taken === 0) return total + inTurn;
      inTurn += taken;
    }
    total += inTurn;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
