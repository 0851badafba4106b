import { CopyPlanError, describeMove, type CopyMove, type CopyPlan } from './copy-plan.js';

/** What a plan is checked against, for one export. */
export interface ExportGeometry {
  uri: string;
  size: number;
  /** Offsets and lengths must be multiples of this (except a range that ends at the export's end). */
  minimumBlockSize: number;
}

export interface PlanContext {
  source: ExportGeometry;
  destination: ExportGeometry;
  /** --from and --to name the same export: moves must not write over what any move reads. */
  sameExport: boolean;
}

/**
 * Refuses a plan that cannot be run as written, naming the move(s) and the
 * rule: every range inside its export and aligned to its minimum block size;
 * no destination byte written by two moves (the result would depend on the
 * order requests finish); and, within one export, no move writing over bytes
 * some move reads.
 */
export function validateCopyPlan(plan: CopyPlan, context: PlanContext): void {
  plan.moves.forEach((move, i) => {
    checkRange(i, move, move.from, 'source', 'reads', context.source);
    checkRange(i, move, move.to, 'destination', 'writes', context.destination);
  });
  checkDestinationsDisjoint(plan.moves);
  if (context.sameExport) checkNoWriteOverSource(plan.moves, context.source.uri);
}

function checkRange(index: number, move: CopyMove, start: number, side: string, verb: string, geometry: ExportGeometry): void {
  const end = start + move.length;
  if (end > geometry.size) {
    throw new CopyPlanError(
      `${describeMove(index, move)} ${verb} past the end of the ${side}: it ends at byte ${end}, the ${side} ${geometry.uri} has ${geometry.size} bytes`,
      `keep every move inside both exports (the ${side} is ${geometry.size} bytes); correct its offset or length`,
    );
  }
  const min = geometry.minimumBlockSize;
  if (start % min !== 0 || (move.length % min !== 0 && end !== geometry.size)) {
    throw new CopyPlanError(
      `${describeMove(index, move)} is not aligned to the ${side}'s minimum block size of ${min} bytes (${geometry.uri})`,
      `make its ${side === 'source' ? '"from"' : '"to"'} offset and its length multiples of ${min}`,
    );
  }
}

function checkDestinationsDisjoint(moves: readonly CopyMove[]): void {
  const order = moves.map((_, i) => i).sort((a, b) => moves[a].to - moves[b].to || a - b);
  for (let k = 1; k < order.length; k++) {
    const [i, j] = [order[k - 1], order[k]];
    if (moves[i].to + moves[i].length > moves[j].to) {
      const [first, second] = i < j ? [i, j] : [j, i];
      throw new CopyPlanError(
        `${describeMove(first, moves[first])} and ${describeMove(second, moves[second])} write overlapping destination ranges`,
        'each destination byte may be written by one move only; shorten or drop one of them',
      );
    }
  }
}

/** Within one export a write can land before a later (or the same) move has read those bytes: refuse any such plan. */
function checkNoWriteOverSource(moves: readonly CopyMove[], uri: string): void {
  const bySource = moves.map((_, i) => i).sort((a, b) => moves[a].from - moves[b].from);
  // furthest[k]: the move whose source range reaches furthest among bySource[0..k].
  const furthest: number[] = [];
  bySource.forEach((m, k) => {
    const best = k > 0 ? furthest[k - 1] : m;
    furthest.push(moves[m].from + moves[m].length > moves[best].from + moves[best].length ? m : best);
  });
  moves.forEach((writer, w) => {
    const end = writer.to + writer.length;
    // The sources that start before this destination range ends…
    let lo = 0;
    let hi = bySource.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (moves[bySource[mid]].from < end) lo = mid + 1;
      else hi = mid;
    }
    if (lo === 0) return;
    // …overlap it if the one reaching furthest ends after it starts.
    const r = furthest[lo - 1];
    if (moves[r].from + moves[r].length > writer.to) {
      throw new CopyPlanError(
        `--from and --to are the same export (${uri}) and ${describeMove(w, writer)} writes over bytes that ${r === w ? 'it reads itself' : describeMove(r, moves[r]) + ' reads'}`,
        'copying over its own source in one export loses data; serve the disk with `nbd-remapper serve --map` and copy from its source export to its destination export instead',
      );
    }
  });
}
