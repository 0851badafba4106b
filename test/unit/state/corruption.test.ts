import { describe, expect, it } from 'vitest';
import { FileStateJournal, parseStateFile } from '../../../src/state/file-state-journal.js';
import { decodeFrame, FrameKind, isFrame } from '../../../src/state/frame-codec.js';
import { StateCorruptError } from '../../../src/state/state-errors.js';
import { CrashFs } from '../remap/durability/helpers/crash-world.js';
import { CrashRun, prng, randomOps, scenarioFrom, STATE_PATH } from '../remap/durability/helpers/crash-workload.js';
import { describeState } from './state-helpers.js';

/**
 * Damaged state files (DESIGN G5, issue 4): every truncation and every
 * single-bit flip is either refused with a StateCorruptError naming the file
 * and offset, or repaired by cutting the torn last commit group — and then
 * the state is exactly the one after an earlier complete group. Never a
 * state that no commit ever produced.
 */

interface Sample {
  bytes: Buffer;
  /** End of the snapshot: damage before it is always refused. */
  logStart: number;
  /** Ends of the complete commit groups, in order (logStart first). */
  boundaries: number[];
  /** The state after each boundary. */
  states: Map<number, string>;
}

async function openBytes(bytes: Buffer): Promise<{ described: string; cut: number; length: number }> {
  const fs = new CrashFs();
  fs.setContents(STATE_PATH, bytes);
  const opened = await FileStateJournal.open(STATE_PATH, { fs });
  if (opened === undefined) throw new Error('state file vanished');
  await opened.journal.close();
  return { described: describeState(opened.state, opened.holds), cut: opened.cutBytes, length: (fs.contents(STATE_PATH) as Buffer).length };
}

async function sampleFile(seed: number, compactBytes: number): Promise<Sample> {
  const random = prng(seed);
  const scenario = { ...scenarioFrom(random), compactBytes, cacheBlocks: 3 };
  const run = new CrashRun(scenario);
  run.sampleEvery = 1 << 30;
  await run.run(randomOps(run.map, random, { finish: false, length: 40 }));
  await run.migration?.close();
  const bytes = Buffer.from(run.fs.contents(STATE_PATH) as Buffer);
  const parsed = parseStateFile(STATE_PATH, bytes);
  const boundaries = [parsed.logStart];
  for (let at = parsed.logStart; ; ) {
    const f = decodeFrame(bytes, at, parsed.identity.frameSeed);
    if (!isFrame(f)) break;
    at = f.end;
    if (f.kind === FrameKind.Commit) boundaries.push(f.end);
  }
  const states = new Map<number, string>();
  for (const b of boundaries) states.set(b, (await openBytes(bytes.subarray(0, b))).described);
  return { bytes, logStart: parsed.logStart, boundaries, states };
}

describe('corrupt state files', () => {
  for (const [label, compactBytes] of [
    ['a long log', 1 << 30],
    ['a compacted snapshot', 2000],
  ] as const) {
    it(`every truncation of a state file with ${label} is refused or cut back to a complete commit group`, async () => {
      const s = await sampleFile(label.length, compactBytes);
      expect(s.boundaries.length).toBeGreaterThan(label === 'a long log' ? 5 : 0);
      let refused = 0;
      let cut = 0;
      for (let length = 0; length < s.bytes.length; length++) {
        const bytes = s.bytes.subarray(0, length);
        if (length < s.logStart) {
          await expect(openBytes(bytes), `truncated to ${length}`).rejects.toBeInstanceOf(StateCorruptError);
          refused++;
          continue;
        }
        const boundary = Math.max(...s.boundaries.filter((b) => b <= length));
        const got = await openBytes(bytes);
        expect(got.described, `truncated to ${length}`).toBe(s.states.get(boundary));
        expect(got.cut).toBe(length - boundary);
        expect(got.length).toBe(boundary);
        cut++;
      }
      console.log(`${label}: ${s.bytes.length} truncations: ${refused} refused, ${cut} recovered (cut to the last complete commit group)`);
    });

    it(`every single-bit flip in a state file with ${label} is refused, or cut only inside the last commit group`, async () => {
      const s = await sampleFile(label.length + 100, compactBytes);
      const random = prng(5);
      const lastGroupStart = s.boundaries.length > 1 ? s.boundaries[s.boundaries.length - 2] : s.logStart;
      let refused = 0;
      let cutLast = 0;
      for (let at = 0; at < s.bytes.length; at++) {
        const bytes = Buffer.from(s.bytes);
        bytes[at] ^= 1 << Math.floor(random() * 8);
        let got: Awaited<ReturnType<typeof openBytes>>;
        try {
          got = await openBytes(bytes);
        } catch (err) {
          expect(err, `flip at ${at}`).toBeInstanceOf(StateCorruptError);
          expect((err as StateCorruptError).message).toContain(STATE_PATH);
          expect((err as StateCorruptError).fix.length).toBeGreaterThan(20);
          refused++;
          continue;
        }
        // Accepted: only a damaged last group can pass for a torn write, and the result is the state before it.
        expect(at, `flip at ${at} was not refused`).toBeGreaterThanOrEqual(lastGroupStart);
        expect(got.described).toBe(s.states.get(lastGroupStart));
        cutLast++;
      }
      console.log(`${label}: ${s.bytes.length} bit flips: ${refused} refused, ${cutLast} inside the last commit group cut as a torn write`);
      expect(refused).toBeGreaterThan(0);
    });
  }

  it('names the file, the offset and a fix', async () => {
    const s = await sampleFile(3, 1 << 30);
    const bytes = Buffer.from(s.bytes);
    const at = s.boundaries[1] - 10;
    bytes[at] ^= 0x40;
    const err = await openBytes(bytes).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StateCorruptError);
    expect((err as StateCorruptError).message).toMatch(new RegExp(`state file ${STATE_PATH} is damaged at byte offset \\d+`));
    expect((err as StateCorruptError).message).toMatch(/not the torn end of a crash/);
  });
});
