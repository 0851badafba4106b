/** Which rule of a map (DESIGN §2) an input breaks. */
export type MapRule =
  | 'not-json'
  | 'no-extents'
  | 'not-a-number'
  | 'gap'
  | 'overlap-destination'
  | 'unaligned'
  | 'out-of-disk'
  | 'overlap-disk'
  | 'too-many-extents'
  | 'block-size';

/** A map refused at start: the message names the extent (by index) and the rule; `fix` says what to change. */
export class MapError extends Error {
  override readonly name = 'MapError';
  constructor(
    message: string,
    readonly rule: MapRule,
    readonly extentIndex: number | undefined,
    readonly fix: string,
  ) {
    super(message);
  }
}
