/**
 * A bitmap over a huge index space (e.g. 2^28 blocks of a 1 TiB disk) that
 * costs memory only where it is mixed: a page is allocated on the first bit
 * that makes it neither all-zero nor all-one, and dropped again when it
 * becomes uniform. Indices may exceed 2^32 (512-byte blocks of a big disk), so
 * index arithmetic uses plain numbers; only the bits inside a page use bitwise ops.
 */
const PAGE_BITS = 32768; // 4 KiB of bits per materialised page
const WORD_BITS = 32;
const PAGE_WORDS = PAGE_BITS / WORD_BITS;

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function lowestBit(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/** Mask of bits [from, to) inside one word, 0 ≤ from < to ≤ 32. */
function wordMask(from: number, to: number): number {
  const high = to === 32 ? 0xffffffff : (1 << to) - 1;
  const low = from === 0 ? 0 : (1 << from) - 1;
  return (high & ~low) >>> 0;
}

export class PagedBitmap {
  private readonly pages: Array<Uint32Array | undefined>;
  /** Set bits per page; a page without an array is all-zero (count 0) or all-one (count = its size). */
  private readonly counts: Float64Array;
  private total = 0;

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid bitmap size ${size}`);
    const pageCount = Math.ceil(size / PAGE_BITS);
    this.pages = new Array<Uint32Array | undefined>(pageCount).fill(undefined);
    this.counts = new Float64Array(pageCount);
  }

  /** Number of set bits. */
  get count(): number {
    return this.total;
  }

  /** Pages that currently cost memory (for tests and status). */
  get materialisedPages(): number {
    let n = 0;
    for (const page of this.pages) if (page !== undefined) n++;
    return n;
  }

  get(index: number): boolean {
    const pg = Math.floor(index / PAGE_BITS);
    const page = this.pages[pg];
    if (page === undefined) return this.counts[pg] !== 0;
    const bit = index - pg * PAGE_BITS;
    return (page[bit >>> 5] & (1 << (bit & 31))) !== 0;
  }

  /**
   * Sets one bit; true when it changed. The engine flips single bits for
   * every block it touches, so this skips fill()'s per-page callback.
   */
  set(index: number): boolean {
    return this.flip(index, true);
  }

  /** Clears one bit; true when it changed. */
  clear(index: number): boolean {
    return this.flip(index, false);
  }

  /** Gives one bit the value `on`; true when it changed. A page that becomes uniform is dropped. */
  private flip(index: number, on: boolean): boolean {
    const pg = Math.floor(index / PAGE_BITS);
    let page = this.pages[pg];
    const count = this.counts[pg];
    const full = this.bitsInPage(pg);
    if (page === undefined) {
      // A uniform page: all-one (count = full) or all-zero (count 0).
      if (on ? count === full : count === 0) return false;
      page = new Uint32Array(PAGE_WORDS);
      if (count !== 0) fillOnes(page, count);
      this.pages[pg] = page;
    }
    const bit = index - pg * PAGE_BITS;
    const word = bit >>> 5;
    const mask = 1 << (bit & 31);
    if (((page[word] & mask) !== 0) === on) return false;
    const after = on ? count + 1 : count - 1;
    page[word] = on ? page[word] | mask : page[word] & ~mask;
    this.counts[pg] = after;
    this.total += on ? 1 : -1;
    if (after === 0 || after === full) this.pages[pg] = undefined;
    return true;
  }

  /** Sets [from, to); returns how many bits changed. */
  setRange(from: number, to: number): number {
    return this.fill(from, to, true);
  }

  /** Clears [from, to); returns how many bits changed. */
  clearRange(from: number, to: number): number {
    return this.fill(from, to, false);
  }

  setAll(): void {
    this.fill(0, this.size, true);
  }

  clearAll(): void {
    this.pages.fill(undefined);
    this.counts.fill(0);
    this.total = 0;
  }

  /** Set bits in [from, to). */
  countRange(from: number, to: number): number {
    let n = 0;
    this.forEachPagePart(from, to, (pg, lo, hi) => {
      const page = this.pages[pg];
      if (page === undefined) {
        if (this.counts[pg] !== 0) n += hi - lo;
        return;
      }
      n += countBits(page, lo, hi);
    });
    return n;
  }

  /** First index in [from, to) whose bit equals `value`, or -1. */
  next(value: boolean, from: number, to: number = this.size): number {
    to = Math.min(to, this.size);
    let index = Math.max(0, from);
    while (index < to) {
      const pg = Math.floor(index / PAGE_BITS);
      const base = pg * PAGE_BITS;
      const pageEnd = Math.min(base + PAGE_BITS, to);
      const page = this.pages[pg];
      if (page === undefined) {
        if ((this.counts[pg] !== 0) === value) return index;
        index = pageEnd;
        continue;
      }
      const found = findBit(page, index - base, pageEnd - base, value);
      if (found >= 0) return base + found;
      index = pageEnd;
    }
    return -1;
  }

  /** Calls fn for each maximal run of bits equal to `value` inside [from, to). */
  forEachRun(value: boolean, from: number, to: number, fn: (start: number, end: number) => unknown): void {
    to = Math.min(to, this.size);
    let start = this.next(value, from, to);
    while (start >= 0) {
      const endAt = this.next(!value, start, to);
      const end = endAt < 0 ? to : endAt;
      // `false` from fn: enough runs.
      if (fn(start, end) === false) return;
      if (endAt < 0) return;
      start = this.next(value, end, to);
    }
  }

  private bitsInPage(pg: number): number {
    return Math.min(PAGE_BITS, this.size - pg * PAGE_BITS);
  }

  private forEachPagePart(from: number, to: number, fn: (pg: number, lo: number, hi: number) => void): void {
    from = Math.max(0, from);
    to = Math.min(to, this.size);
    let index = from;
    while (index < to) {
      const pg = Math.floor(index / PAGE_BITS);
      const base = pg * PAGE_BITS;
      const end = Math.min(base + PAGE_BITS, to);
      fn(pg, index - base, end - base);
      index = end;
    }
  }

  private fill(from: number, to: number, value: boolean): number {
    let changed = 0;
    this.forEachPagePart(from, to, (pg, lo, hi) => {
      const pageSize = this.bitsInPage(pg);
      const before = this.counts[pg];
      const uniform = value ? pageSize : 0;
      if (before === uniform) return;
      let page = this.pages[pg];
      if (lo === 0 && hi === pageSize) {
        this.pages[pg] = undefined;
        this.counts[pg] = uniform;
        changed += Math.abs(uniform - before);
        return;
      }
      if (page === undefined) {
        page = new Uint32Array(PAGE_WORDS);
        if (before !== 0) fillOnes(page, pageSize);
        this.pages[pg] = page;
      }
      const delta = fillBits(page, lo, hi, value);
      const after = before + delta;
      this.counts[pg] = after;
      changed += Math.abs(delta);
      if (after === 0 || after === pageSize) this.pages[pg] = undefined;
    });
    this.total += value ? changed : -changed;
    return changed;
  }
}

function fillOnes(page: Uint32Array, bits: number): void {
  const fullWords = Math.floor(bits / WORD_BITS);
  page.fill(0xffffffff, 0, fullWords);
  if (bits % WORD_BITS !== 0) page[fullWords] = wordMask(0, bits % WORD_BITS);
}

/** Sets or clears bits [lo, hi) of a page; returns the change in set bits. */
function fillBits(page: Uint32Array, lo: number, hi: number, value: boolean): number {
  let delta = 0;
  let bit = lo;
  while (bit < hi) {
    const word = bit >>> 5;
    const wordEnd = Math.min((word + 1) * WORD_BITS, hi);
    const mask = wordMask(bit & 31, wordEnd - word * WORD_BITS);
    const old = page[word];
    const now = value ? (old | mask) >>> 0 : (old & ~mask) >>> 0;
    if (now !== old) {
      delta += popcount(now) - popcount(old);
      page[word] = now;
    }
    bit = wordEnd;
  }
  return delta;
}

function countBits(page: Uint32Array, lo: number, hi: number): number {
  let n = 0;
  let bit = lo;
  while (bit < hi) {
    const word = bit >>> 5;
    const wordEnd = Math.min((word + 1) * WORD_BITS, hi);
    n += popcount(page[word] & wordMask(bit & 31, wordEnd - word * WORD_BITS));
    bit = wordEnd;
  }
  return n;
}

/** First bit in [lo, hi) of a page equal to `value`, or -1. */
function findBit(page: Uint32Array, lo: number, hi: number, value: boolean): number {
  let bit = lo;
  while (bit < hi) {
    const word = bit >>> 5;
    const wordEnd = Math.min((word + 1) * WORD_BITS, hi);
    const raw = value ? page[word] : ~page[word];
    const bits = (raw & wordMask(bit & 31, wordEnd - word * WORD_BITS)) >>> 0;
    if (bits !== 0) return word * WORD_BITS + lowestBit(bits);
    bit = wordEnd;
  }
  return -1;
}
