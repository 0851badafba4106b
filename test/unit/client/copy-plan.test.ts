import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CopyPlanError, wholeDiskPlan, type CopyMove, type CopyPlan } from '../../../src/client/copy/copy-plan.js';
import { parseCopyPlan } from '../../../src/client/copy/parse-copy-plan.js';
import { planChunks } from '../../../src/client/copy/plan-chunks.js';
import { validateCopyPlan, type PlanContext } from '../../../src/client/copy/validate-copy-plan.js';

function planError(run: () => void): CopyPlanError {
  try {
    run();
  } catch (err) {
    if (err instanceof CopyPlanError) return err;
    throw err;
  }
  throw new Error('expected a CopyPlanError, nothing was thrown');
}

const context = (over: Partial<PlanContext> = {}): PlanContext => ({
  source: { uri: 'nbd://h/source', size: 1 << 20, minimumBlockSize: 1 },
  destination: { uri: 'nbd://h/destination', size: 1 << 20, minimumBlockSize: 1 },
  sameExport: false,
  ...over,
});

describe('parseCopyPlan', () => {
  it('reads moves in order', () => {
    const plan = parseCopyPlan('{"moves":[{"from":4096,"to":0,"length":8192},{"to":1,"length":2,"from":3}]}', 'p.json');
    expect(plan.moves).toEqual([
      { from: 4096, to: 0, length: 8192 },
      { from: 3, to: 1, length: 2 },
    ]);
  });

  it.each([
    ['not json', /not valid JSON/],
    ['[]', /object with a "moves" array/],
    ['{"move":[]}', /object with a "moves" array/],
    ['{"moves":[]}', /no moves/],
    ['{"moves":[{"from":0,"to":0,"length":1}],"extents":[]}', /unknown key\(s\) "extents"/],
    ['{"moves":[5]}', /move 1 of plan p.json is not an object/],
    ['{"moves":[{"from":0,"to":0,"length":1},{"from":0,"to":0,"lenght":1}]}', /move 2 of plan p.json has unknown key\(s\) "lenght"/],
    ['{"moves":[{"from":0,"length":1}]}', /move 1 of plan p.json has no "to"/],
    ['{"moves":[{"from":-1,"to":0,"length":1}]}', /"from" is -1, not a whole number/],
    ['{"moves":[{"from":1.5,"to":0,"length":1}]}', /"from" is 1.5/],
    ['{"moves":[{"from":"4K","to":0,"length":1}]}', /"from" is "4K"/],
    ['{"moves":[{"from":0,"to":0,"length":1e300}]}', /"length" is 1e\+300/],
    ['{"moves":[{"from":0,"to":0,"length":0}]}', /move 1 of plan p.json has length 0/],
  ])('refuses %s', (text, message) => {
    const error = planError(() => parseCopyPlan(text, 'p.json'));
    expect(error.message).toMatch(message);
    expect(error.message).toContain('p.json');
    expect(error.fix.length).toBeGreaterThan(10);
  });
});

describe('validateCopyPlan', () => {
  it('accepts moves inside both exports with disjoint destinations, overlapping sources included', () => {
    const plan: CopyPlan = { moves: [{ from: 0, to: 0, length: 4096 }, { from: 0, to: 4096, length: 4096 }, { from: (1 << 20) - 1, to: (1 << 20) - 1, length: 1 }] };
    expect(() => validateCopyPlan(plan, context())).not.toThrow();
  });

  it('refuses a move that reads past the end of the source, naming the move and the sizes', () => {
    const plan = { moves: [{ from: 0, to: 0, length: 1 }, { from: (1 << 20) - 100, to: 0 + 8192, length: 101 }] };
    const error = planError(() => validateCopyPlan(plan, context()));
    expect(error.message).toMatch(/^move 2 \(from 1048476, to 8192, length 101\) reads past the end of the source/);
    expect(error.message).toContain('ends at byte 1048577');
    expect(error.message).toContain('nbd://h/source has 1048576 bytes');
  });

  it('refuses a move that writes past the end of the destination', () => {
    const error = planError(() => validateCopyPlan({ moves: [{ from: 0, to: 4096, length: 4096 }] }, context({ destination: { uri: 'nbd://h/d', size: 6000, minimumBlockSize: 1 } })));
    expect(error.message).toMatch(/move 1 .* writes past the end of the destination.*nbd:\/\/h\/d has 6000 bytes/);
  });

  it('refuses misaligned moves, but lets the last partial block of an export through', () => {
    const aligned = context({ source: { uri: 's', size: 10_000, minimumBlockSize: 512 } });
    expect(planError(() => validateCopyPlan({ moves: [{ from: 100, to: 0, length: 512 }] }, aligned)).message).toMatch(/move 1 .* not aligned to the source's minimum block size of 512/);
    expect(planError(() => validateCopyPlan({ moves: [{ from: 0, to: 0, length: 500 }] }, aligned)).message).toMatch(/not aligned/);
    expect(() => validateCopyPlan({ moves: [{ from: 9728, to: 0, length: 272 }] }, aligned)).not.toThrow();
    const destinationAligned = context({ destination: { uri: 'd', size: 1 << 20, minimumBlockSize: 4096 } });
    expect(planError(() => validateCopyPlan({ moves: [{ from: 0, to: 512, length: 4096 }] }, destinationAligned)).message).toMatch(/destination's minimum block size of 4096/);
  });

  it('refuses overlapping destination ranges, naming both moves in plan order', () => {
    const plan = { moves: [{ from: 0, to: 8192, length: 4096 }, { from: 4096, to: 0, length: 4096 }, { from: 8192, to: 4096, length: 4097 }] };
    const error = planError(() => validateCopyPlan(plan, context()));
    expect(error.message).toBe('move 1 (from 0, to 8192, length 4096) and move 3 (from 8192, to 4096, length 4097) write overlapping destination ranges');
  });

  it('within one export, refuses a move that writes where any move reads', () => {
    const same = context({ sameExport: true });
    // Disjoint: fine.
    expect(() => validateCopyPlan({ moves: [{ from: 0, to: 8192, length: 4096 }, { from: 4096, to: 12288, length: 4096 }] }, same)).not.toThrow();
    // Move 1 writes over what move 2 reads later.
    const later = planError(() => validateCopyPlan({ moves: [{ from: 0, to: 4096, length: 4096 }, { from: 4096, to: 65536, length: 4096 }] }, same));
    expect(later.message).toMatch(/same export .* move 1 \(from 0, to 4096, length 4096\) writes over bytes that move 2 .* reads/);
    expect(later.fix).toMatch(/nbd-remapper serve --map/);
    // A move overlapping its own source.
    expect(planError(() => validateCopyPlan({ moves: [{ from: 0, to: 100, length: 4096 }] }, same)).message).toMatch(/it reads itself/);
    // The same plan across two exports is fine.
    expect(() => validateCopyPlan({ moves: [{ from: 0, to: 100, length: 4096 }] }, context())).not.toThrow();
  });

  const move = (size: number) =>
    fc.record({ from: fc.nat(size), to: fc.nat(size), length: fc.integer({ min: 1, max: size }) }).filter((m) => m.from + m.length <= size && m.to + m.length <= size);

  it('refuses exactly the plans where some destination byte is written twice (against a byte map)', () => {
    const size = 64;
    fc.assert(
      fc.property(fc.array(move(size), { minLength: 1, maxLength: 6 }), (moves: CopyMove[]) => {
        const writes = new Array<number>(size).fill(0);
        for (const m of moves) for (let b = m.to; b < m.to + m.length; b++) writes[b]++;
        const overlaps = writes.some((n) => n > 1);
        const ctx = context({ source: { uri: 's', size, minimumBlockSize: 1 }, destination: { uri: 'd', size, minimumBlockSize: 1 } });
        let refused = false;
        try {
          validateCopyPlan({ moves }, ctx);
        } catch (err) {
          expect(err).toBeInstanceOf(CopyPlanError);
          refused = true;
        }
        expect(refused).toBe(overlaps);
      }),
    );
  });

  it('within one export, refuses exactly the plans where a written byte is also read (against a byte map)', () => {
    const size = 64;
    fc.assert(
      fc.property(fc.array(move(size), { minLength: 1, maxLength: 5 }), (moves: CopyMove[]) => {
        const written = new Array<number>(size).fill(0);
        const read = new Array<boolean>(size).fill(false);
        for (const m of moves) {
          for (let b = m.to; b < m.to + m.length; b++) written[b]++;
          for (let b = m.from; b < m.from + m.length; b++) read[b] = true;
        }
        const bad = written.some((n, b) => n > 1 || (n > 0 && read[b]));
        const ctx = context({ source: { uri: 's', size, minimumBlockSize: 1 }, destination: { uri: 's', size, minimumBlockSize: 1 }, sameExport: true });
        let refused = false;
        try {
          validateCopyPlan({ moves }, ctx);
        } catch (err) {
          expect(err).toBeInstanceOf(CopyPlanError);
          refused = true;
        }
        expect(refused).toBe(bad);
      }),
    );
  });
});

describe('wholeDiskPlan', () => {
  it('copies everything when the sizes match, without a note', () => {
    expect(wholeDiskPlan(8192, 8192)).toEqual({ plan: { moves: [{ from: 0, to: 0, length: 8192 }] } });
  });

  it('copies the smaller size and says so when they differ', () => {
    const bigger = wholeDiskPlan(10_000, 8192);
    expect(bigger.plan.moves).toEqual([{ from: 0, to: 0, length: 8192 }]);
    expect(bigger.note).toMatch(/source \(10000 bytes\) is larger .* only its first 8192 bytes/);
    const smaller = wholeDiskPlan(4096, 8192);
    expect(smaller.plan.moves).toEqual([{ from: 0, to: 0, length: 4096 }]);
    expect(smaller.note).toMatch(/destination \(8192 bytes\) is larger .* last 4096 bytes are left/);
  });
});

describe('planChunks', () => {
  it('cuts moves into request-sized chunks in plan order, ascending within a move', () => {
    const plan = { moves: [{ from: 10_000, to: 0, length: 10 }, { from: 0, to: 100, length: 4 }] };
    expect([...planChunks(plan, 4)]).toEqual([
      { move: 0, from: 10_000, to: 0, length: 4 },
      { move: 0, from: 10_004, to: 4, length: 4 },
      { move: 0, from: 10_008, to: 8, length: 2 },
      { move: 1, from: 0, to: 100, length: 4 },
    ]);
  });

  it('covers every byte of every move exactly once', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ from: fc.nat(1000), to: fc.nat(1000), length: fc.integer({ min: 1, max: 300 }) }), { maxLength: 5 }),
        fc.integer({ min: 1, max: 100 }),
        (moves, requestSize) => {
          const chunks = [...planChunks({ moves }, requestSize)];
          // Walking the chunks must trace each move from its first byte to its last, in plan order, without gaps or repeats.
          let at = 0;
          moves.forEach((m, i) => {
            let next = m.from;
            for (; at < chunks.length && chunks[at].move === i; at++) {
              const c = chunks[at];
              expect(c.length).toBeGreaterThan(0);
              expect(c.length).toBeLessThanOrEqual(requestSize);
              expect(c.from).toBe(next);
              expect(c.to - m.to).toBe(c.from - m.from);
              next += c.length;
            }
            expect(next).toBe(m.from + m.length);
          });
          expect(at).toBe(chunks.length);
        },
      ),
    );
  });
});
