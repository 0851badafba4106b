import { AllocationFlag, type StatusDescriptor } from 'nbd-protocol-ts';
import type { BlockDevice } from './block-device.js';
import type { BytePiece } from './map.js';

/**
 * base:allocation of consecutive export byte pieces from the device's hole
 * map (all data when the device cannot tell). Adjacent descriptors with the
 * same flags merge; together they cover exactly the pieces.
 */
export async function allocationDescriptors(device: BlockDevice, pieces: readonly BytePiece[]): Promise<StatusDescriptor[]> {
  const out: StatusDescriptor[] = [];
  const push = (length: number, flags: number): void => {
    if (length <= 0) return;
    const last = out[out.length - 1];
    if (last !== undefined && last.flags === flags) last.length += length;
    else out.push({ length, flags });
  };
  for (const piece of pieces) {
    if (device.allocation === undefined) {
      push(piece.length, 0);
      continue;
    }
    let covered = 0;
    for (const e of await device.allocation(piece.diskOffset, piece.length)) {
      const length = Math.min(e.length, piece.length - covered);
      push(length, e.data ? 0 : AllocationFlag.HOLE | AllocationFlag.ZERO);
      covered += length;
    }
    // Whatever the device did not describe counts as data.
    push(piece.length - covered, 0);
  }
  return out;
}
