import { EventEmitter } from 'node:events';
import { expect, it, vi } from 'vitest';
import { serverOutput, type OutputStream } from '../../../src/cli/server-output.js';

/** A stream whose reader takes nothing until `drain()`: what a stalled terminal or pipe is to the writer. */
class StalledStream extends EventEmitter implements OutputStream {
  written: string[] = [];
  writableLength = 0;
  blocking: boolean[] = [];
  readonly _handle = { setBlocking: (b: boolean) => (this.blocking.push(b), 0) };
  write(text: string): boolean {
    this.written.push(text);
    this.writableLength += text.length;
    return false;
  }
  drain(): void {
    this.writableLength = 0;
    this.emit('drain');
  }
}

it('queues up to the bound, then drops lines and counts them once the reader is back', () => {
  const stdout = new StalledStream();
  const stderr = new StalledStream();
  const output = serverOutput({ stdout, stderr }, 100);
  output.neverWait();
  expect([stdout.blocking, stderr.blocking]).toEqual([[false], [false]]);
  for (let i = 0; i < 10; i++) output.line('stderr', `line ${i} ${'x'.repeat(30)}`);
  // 40 bytes a line: the fourth finds more than 100 waiting, and it and the rest are dropped.
  expect(stderr.written).toHaveLength(3);
  stderr.drain();
  output.line('stderr', 'after');
  expect(stderr.written.slice(3)).toEqual([expect.stringMatching(/warn {2}7 line\(s\) of stderr dropped: its reader/), 'after\n']);
  expect(stdout.written).toEqual([]);
});

it('a stream that fails is said on the other one, once, and written no more', () => {
  const stdout = new StalledStream();
  const stderr = new StalledStream();
  const output = serverOutput({ stdout, stderr });
  stderr.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  stderr.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
  output.line('stderr', 'lost');
  expect(stderr.written).toEqual([]);
  expect(stdout.written).toEqual([expect.stringMatching(/warn {2}stderr is gone \(EPIPE\): the server goes on serving without it/)]);
  // Both gone: nothing is written anywhere, nothing throws.
  stdout.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' }));
  output.line('stdout', 'lost too');
  expect(stdout.written).toHaveLength(1);
});

it('before exit, gives queued lines time to leave, then writes synchronously again', async () => {
  const stdout = new StalledStream();
  const stderr = new StalledStream();
  const output = serverOutput({ stdout, stderr });
  output.neverWait();
  output.line('stdout', 'last words');
  const exiting = output.beforeExit({ waitMs: 5_000 });
  let done = false;
  void exiting.then(() => (done = true));
  await new Promise((r) => setTimeout(r, 20));
  expect(done).toBe(false);
  stdout.drain();
  await exiting;
  expect(stdout.blocking).toEqual([false, true]);
  // A reader that never comes back holds the exit for `waitMs` only.
  output.line('stderr', 'never taken');
  vi.useFakeTimers();
  try {
    let left = false;
    const leaving = output.beforeExit({ waitMs: 50 }).then(() => (left = true));
    await vi.advanceTimersByTimeAsync(49);
    expect(left).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await leaving;
    expect(left).toBe(true);
  } finally {
    vi.useRealTimers();
  }
});
