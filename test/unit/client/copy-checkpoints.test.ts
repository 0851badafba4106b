import { describe, expect, it } from 'vitest';
import { decodeCopyNote, encodeCopyNote, planFingerprint } from '../../../src/client/copy/copy-checkpoints.js';

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
