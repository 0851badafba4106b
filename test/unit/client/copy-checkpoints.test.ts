import { describe, expect, it } from 'vitest';
import { checkpointInterval, decodeCopyNote, encodeCopyNote, planFingerprint } from '../../../src/client/copy/copy-checkpoints.js';

describe("a copy's checkpoint note", () => {
  const plan = { moves: [{ from: 0, to: 4096, length: 8192 }] };

  it('reads back what it wrote, and tells plans apart', () => {
    const note = { plan: planFingerprint(plan), done: 4096, total: 8192 };
    expect(decodeCopyNote(encodeCopyNote(note))).toEqual(note);
    expect(planFingerprint({ moves: [{ from: 0, to: 4096, length: 8192 }] })).toBe(note.plan);
    expect(planFingerprint({ moves: [{ from: 4096, to: 0, length: 8192 }] })).not.toBe(note.plan);
  });

  it('takes any other note for none: a person\'s, another tool\'s, a damaged one', () => {
    for (const other of [undefined, null, 42, '', 'rsync done up to /home', '{"copy":{"plan":"x","done":9,"total":8}}', '{"copy":{"plan":"x","done":-1,"total":8}}', '{"copy":"x"}', '{not json']) {
      expect(decodeCopyNote(other)).toBeUndefined();
    }
  });
});

describe('how often a copy checkpoints', () => {
  const KiB = 1024;
  const MiB = 1024 * KiB;

  it('as asked, unless a --safe server\'s cache would fill before the next checkpoint', () => {
    expect(checkpointInterval(64 * MiB, MiB, undefined)).toEqual({ every: 64 * MiB });
    expect(checkpointInterval(64 * MiB, MiB, 256 * MiB)).toEqual({ every: 64 * MiB });
    const lowered = checkpointInterval(64 * MiB, MiB, 4 * MiB);
    expect(lowered.every).toBe(2 * MiB);
    expect(lowered.why).toMatch(/^checkpointing every 2\.0 MiB: the server runs with --safe and a 4\.0 MiB cache, which would fill before a checkpoint every 64 MiB$/);
  });

  it('after every request when one request is over half the cache, and says to send smaller ones — not that it lowered the interval', () => {
    const got = checkpointInterval(256 * KiB, MiB, 64 * KiB);
    expect(got.every).toBe(MiB);
    expect(got.why).toMatch(/^checkpointing after every request: .* 64 KiB cache, and one request of 1\.0 MiB is more than half of it; a --request-size of 32 KiB or less/);
    expect(got.why).not.toMatch(/would fill before a checkpoint every 256 KiB/);
  });
});
