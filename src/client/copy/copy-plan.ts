/**
 * A copy plan: byte ranges of the source export and where each goes on the
 * destination export, executed in order. The JSON form is
 * `{"moves": [{"from": 0, "to": 1048576, "length": 4096}, …]}` (docs/copy-plans.md).
 */
export interface CopyMove {
  /** Source byte offset. */
  from: number;
  /** Destination byte offset. */
  to: number;
  length: number;
}

export interface CopyPlan {
  moves: CopyMove[];
}

/** A plan that cannot be run; the message names the move and the rule, `fix` says what to change. */
export class CopyPlanError extends Error {
  override readonly name = 'CopyPlanError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/** "move 3 (from 8192, to 0, length 4096)": how messages name a move; numbered from 1 as a person counts. */
export function describeMove(index: number, move: CopyMove): string {
  return `move ${index + 1} (from ${move.from}, to ${move.to}, length ${move.length})`;
}

/**
 * Without a plan: the whole source onto the destination at offset 0, as much
 * as fits in the smaller export. `note` says so when the sizes differ.
 */
export function wholeDiskPlan(sourceSize: number, destinationSize: number): { plan: CopyPlan; note?: string } {
  const length = Math.min(sourceSize, destinationSize);
  const plan: CopyPlan = { moves: length > 0 ? [{ from: 0, to: 0, length }] : [] };
  if (sourceSize === destinationSize) return { plan };
  const note =
    sourceSize > destinationSize
      ? `the source (${sourceSize} bytes) is larger than the destination (${destinationSize} bytes): copying only its first ${length} bytes`
      : `the destination (${destinationSize} bytes) is larger than the source (${sourceSize} bytes): its last ${destinationSize - sourceSize} bytes are left as they are`;
  return { plan, note };
}
