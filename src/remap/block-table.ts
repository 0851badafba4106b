/**
 * Sets and maps keyed by block number, for state whose members come and go
 * all the time (the RAM cache: every held block enters and leaves once).
 *
 * V8's Map and Set leave a hole for every deleted entry and rebuild the
 * whole table when the holes fill it: with 16,384 blocks held and a
 * migration cycling a quarter million through, that is a fresh table of
 * ~1 MiB every few thousand writes, in large-object space, faulted in page
 * by page (in a 1 GiB migration ~12,000 page faults, 17% of the server's,
 * and the Map/Set builtins ~8% of its CPU samples).
 *
 * Here: open addressing with linear probing, and deletion shifting the
 * following entries back instead of leaving a tombstone, so the table never
 * fills with holes; it doubles when half full and halves when an eighth
 * full, so a steady churn never rebuilds it and iterating (which walks every
 * slot) costs at most eight slots per member. Iteration is in slot order,
 * not insertion order; nothing may be added or deleted while iterating.
 */
const EMPTY = -1;
const MIN_CAPACITY = 16;

class BlockTable {
  protected slots: Float64Array;
  protected mask: number;
  private count = 0;

  constructor(capacity = MIN_CAPACITY) {
    let size = MIN_CAPACITY;
    while (size < capacity) size *= 2;
    this.slots = new Float64Array(size).fill(EMPTY);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  /** Slots in the table: between two and eight per member (at least 16). */
  get capacity(): number {
    return this.slots.length;
  }

  has(block: number): boolean {
    return this.slotOf(block) >= 0;
  }

  delete(block: number): boolean {
    const slot = this.slotOf(block);
    if (slot < 0) return false;
    this.vacate(slot);
    return true;
  }

  /** The members, in slot order. */
  *members(): IterableIterator<number> {
    const keys = this.slots;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== EMPTY) yield keys[i];
  }

  /**
   * The members in [from, to), unordered, as a snapshot (the caller may
   * delete while going through it): walks the members or probes the range,
   * whichever is smaller, so neither a huge range nor a big table costs more
   * than the other.
   */
  membersIn(from: number, to: number): number[] {
    const out: number[] = [];
    if (this.count === 0 || to <= from) return out;
    if (this.count < to - from) {
      for (const block of this.members()) if (block >= from && block < to) out.push(block);
    } else {
      for (let block = from; block < to; block++) if (this.has(block)) out.push(block);
    }
    return out;
  }

  clear(): void {
    this.slots.fill(EMPTY);
    this.clearValues();
    this.count = 0;
  }

  /** The slot holding `block`, or -1. */
  protected slotOf(block: number): number {
    const keys = this.slots;
    for (let i = this.home(block); ; i = (i + 1) & this.mask) {
      const k = keys[i];
      if (k === block) return i;
      if (k === EMPTY) return -1;
    }
  }

  /** The slot for `block`: where it is, or the empty slot it goes into (the caller fills it). Grows first when half full. */
  protected claim(block: number): { slot: number; fresh: boolean } {
    if (block < 0 || !Number.isSafeInteger(block)) throw new RangeError(`not a block number: ${block}`);
    if ((this.count + 1) * 2 > this.slots.length) this.resize(this.slots.length * 2);
    const keys = this.slots;
    for (let i = this.home(block); ; i = (i + 1) & this.mask) {
      const k = keys[i];
      if (k === block) return { slot: i, fresh: false };
      if (k === EMPTY) {
        keys[i] = block;
        this.count++;
        return { slot: i, fresh: true };
      }
    }
  }

  /** Empties `slot` and moves later entries of its probe run back, so no lookup ever passes a hole. */
  protected vacate(slot: number): void {
    const keys = this.slots;
    const mask = this.mask;
    let hole = slot;
    for (let i = (slot + 1) & mask; keys[i] !== EMPTY; i = (i + 1) & mask) {
      const home = this.home(keys[i]);
      // The entry at i may move to the hole only if its home is not within (hole, i] (cyclically).
      const stays = hole <= i ? hole < home && home <= i : hole < home || home <= i;
      if (stays) continue;
      keys[hole] = keys[i];
      this.moveValue(i, hole);
      hole = i;
    }
    keys[hole] = EMPTY;
    this.moveValue(-1, hole);
    this.count--;
    // Iterating walks every slot: a table mostly emptied (finish draining the cache) halves, rarely enough
    // (an eighth full, to a quarter) that a steady churn never rebuilds it.
    if (this.count * 8 < keys.length && keys.length > MIN_CAPACITY) this.resize(keys.length / 2);
  }

  /** Values follow their keys (maps); a set has none. `from` -1: clear `to`. */
  protected moveValue(from: number, to: number): void {
    void from;
    void to;
  }

  protected clearValues(): void {}

  /**
   * Rebuilds at `size` slots. Each value moves as its key is placed
   * (startRehome), not through a list of moves: that list was a pair per
   * member at every doubling.
   */
  protected resize(size: number): void {
    const oldKeys = this.slots;
    const carry = this.startRehome(size);
    this.slots = new Float64Array(size).fill(EMPTY);
    this.mask = size - 1;
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      if (oldKeys[i] === EMPTY) continue;
      const to = this.claim(oldKeys[i]).slot;
      carry?.(i, to);
    }
  }

  /** Before a rebuild at `size` slots: what moves a value from its old slot to its new one (a set has none). */
  protected startRehome(size: number): ((from: number, to: number) => void) | undefined {
    void size;
    return undefined;
  }

  private home(block: number): number {
    // Fibonacci hashing of both halves: consecutive blocks spread over the table.
    return (Math.imul((block | 0) ^ Math.floor(block / 4294967296), 0x9e3779b1) >>> 0) & this.mask;
  }
}

/** A set of block numbers (see BlockTable). */
export class BlockSet extends BlockTable {
  add(block: number): this {
    this.claim(block);
    return this;
  }

  [Symbol.iterator](): IterableIterator<number> {
    return this.members();
  }
}

/** A map from block numbers to values (see BlockTable). */
export class BlockMap<V> extends BlockTable {
  private values: Array<V | undefined>;

  constructor(capacity?: number) {
    super(capacity);
    this.values = new Array<V | undefined>(this.slots.length).fill(undefined);
  }

  get(block: number): V | undefined {
    const slot = this.slotOf(block);
    return slot < 0 ? undefined : this.values[slot];
  }

  set(block: number, value: V): this {
    // Claimed first: claiming may grow the table, which replaces the values array.
    const { slot } = this.claim(block);
    this.values[slot] = value;
    return this;
  }

  /** The members, in slot order (Map's name for it). */
  keys(): IterableIterator<number> {
    return this.members();
  }

  protected override moveValue(from: number, to: number): void {
    this.values[to] = from < 0 ? undefined : this.values[from];
  }

  protected override clearValues(): void {
    this.values.fill(undefined);
  }

  protected override startRehome(size: number): (from: number, to: number) => void {
    const old = this.values;
    const values = new Array<V | undefined>(size).fill(undefined);
    this.values = values;
    return (from, to) => {
      values[to] = old[from];
    };
  }
}
