import type { BlockExport } from '../../../../src/server/block-export.js';
import { WRITTEN_CONTEXT, WRITTEN_FLAG } from '../../../../src/remap/written-runs.js';

/**
 * What the `x-nbd-remapper:written` context of `exp` says of every block that
 * [offset, offset+length) touches, asking again where an answer stops short
 * (as the spec lets it), as a map from destination block to written.
 */
export async function writtenBlocks(exp: BlockExport, offset: number, length: number, B: number): Promise<Map<number, boolean>> {
  const context = exp.metaContexts?.find((c) => c.name === WRITTEN_CONTEXT);
  if (context === undefined) throw new Error(`${exp.name} offers no ${WRITTEN_CONTEXT} context`);
  const out = new Map<number, boolean>();
  const end = offset + length;
  let at = offset;
  while (at < end) {
    const descriptors = await context.status(at, end - at);
    if (descriptors.length === 0) throw new Error(`${WRITTEN_CONTEXT} ${at}+${end - at}: no descriptor`);
    for (const { length: n, flags } of descriptors) {
      if (n <= 0 || at + n > end) throw new Error(`${WRITTEN_CONTEXT} ${at}+${end - at}: a descriptor of ${n} bytes`);
      for (let d = Math.floor(at / B); d * B < at + n; d++) {
        const isWritten = (flags & WRITTEN_FLAG) !== 0;
        const before = out.get(d);
        // Descriptors split at block boundaries: one block never gets two answers.
        if (before !== undefined && before !== isWritten) throw new Error(`${WRITTEN_CONTEXT}: destination block ${d} is reported both written and not`);
        out.set(d, isWritten);
      }
      at += n;
    }
  }
  return out;
}
