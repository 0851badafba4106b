import { CopyPlanError, type CopyMove, type CopyPlan } from './copy-plan.js';

const EXAMPLE = '{"moves": [{"from": 0, "to": 1048576, "length": 4096}]}';
const MOVE_KEYS = ['from', 'to', 'length'] as const;

/**
 * Reads a plan file's JSON. Strict about shape — unknown keys are refused, so a
 * typo such as "lenght" is an error rather than a move of the wrong size.
 * Whether the moves fit the exports is validateCopyPlan's job.
 */
export function parseCopyPlan(text: string, file: string): CopyPlan {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CopyPlanError(`plan ${file} is not valid JSON: ${(err as Error).message}`, `write it like ${EXAMPLE}`);
  }
  if (!isObject(value) || !Array.isArray(value.moves)) {
    throw new CopyPlanError(`plan ${file} must be an object with a "moves" array`, `write it like ${EXAMPLE}`);
  }
  const extra = Object.keys(value).filter((k) => k !== 'moves');
  if (extra.length > 0) throw new CopyPlanError(`plan ${file} has unknown key(s) ${extra.map((k) => `"${k}"`).join(', ')}`, `the only top-level key is "moves", e.g. ${EXAMPLE}`);
  if (value.moves.length === 0) throw new CopyPlanError(`plan ${file} has no moves`, `list at least one move, e.g. ${EXAMPLE}`);
  return { moves: value.moves.map((m: unknown, i: number) => parseMove(m, i, file)) };
}

function parseMove(value: unknown, index: number, file: string): CopyMove {
  const where = `move ${index + 1} of plan ${file}`;
  const fix = `each move is {"from": SOURCE_OFFSET, "to": DESTINATION_OFFSET, "length": BYTES} with whole numbers of bytes`;
  if (!isObject(value)) throw new CopyPlanError(`${where} is not an object`, fix);
  const unknown = Object.keys(value).filter((k) => !(MOVE_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) throw new CopyPlanError(`${where} has unknown key(s) ${unknown.map((k) => `"${k}"`).join(', ')}`, fix);
  const move = { from: 0, to: 0, length: 0 };
  for (const key of MOVE_KEYS) {
    const n = value[key];
    if (n === undefined) throw new CopyPlanError(`${where} has no "${key}"`, fix);
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) {
      throw new CopyPlanError(`${where}: "${key}" is ${JSON.stringify(n)}, not a whole number of bytes`, fix);
    }
    move[key] = n;
  }
  if (move.length === 0) throw new CopyPlanError(`${where} has length 0`, 'remove the move, or give it a length of at least one byte');
  return move;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
