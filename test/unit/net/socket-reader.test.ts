import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { SocketReader, StreamEndedError, type ByteSink } from '../../../src/net/socket-reader.js';

/** The parts of a socket the reader uses; `resumes` counts how often reading was restarted after a pause. */
class FakeSocket extends EventEmitter {
  resumes = 0;
  pauses = 0;
  resume(): this {
    this.resumes++;
    return this;
  }
  pause(): this {
    this.pauses++;
    return this;
  }
}

/** Drives a reader as Node does with `onread`: ask for a buffer, fill part of it, report how much. Returns what the callback returned. */
function recv(reader: SocketReader, bytes: Buffer): boolean {
  const next = reader.onread.buffer;
  if (typeof next !== 'function') throw new Error('expected a buffer function');
  const issued = next();
  const buf = Buffer.from(issued.buffer, issued.byteOffset, issued.byteLength);
  expect(buf.length).toBeGreaterThanOrEqual(bytes.length);
  bytes.copy(buf);
  const more = reader.onread.callback(bytes.length, buf);
  // Node reuses memory it was handed; anything the reader kept a view of would change now.
  buf.fill(0x77, 0, bytes.length);
  return more;
}

function attached(): { reader: SocketReader; socket: FakeSocket } {
  const reader = new SocketReader();
  const socket = new FakeSocket();
  reader.attach(socket as unknown as Socket);
  return { reader, socket };
}

class RecordingSink implements ByteSink {
  readonly scratch = Buffer.alloc(5);
  readonly got: number[] = [];
  buffer(): Buffer {
    return this.scratch;
  }
  received(bytes: number): void {
    this.got.push(...this.scratch.subarray(0, bytes));
  }
  ended(cause: StreamEndedError): void {
    this.end = cause;
  }
  end: StreamEndedError | undefined;
}

describe('SocketReader', () => {
  it('reads exact byte counts across recvs, from copies of the reused receive buffer', async () => {
    const { reader } = attached();
    recv(reader, Buffer.from([1, 2, 3]));
    recv(reader, Buffer.from([4, 5, 6, 7]));
    expect([...(await reader.read(2))]).toEqual([1, 2]);
    const waiting = reader.read(6);
    recv(reader, Buffer.from([8, 9]));
    expect([...(await waiting)]).toEqual([3, 4, 5, 6, 7, 8]);
    expect(await reader.read(1).then(() => 'second read', () => 'rejected')).toBe('second read');
  });

  it('stops reading above the high-water mark while nobody reads, and starts again when a read drains it', async () => {
    const { reader, socket } = attached();
    const piece = Buffer.alloc(16 * 1024, 1);
    let more = true;
    let pushed = 0;
    while (more) {
      more = recv(reader, piece);
      pushed += piece.length;
      if (pushed > 128 * 1024 * 1024) throw new Error('never paused');
    }
    expect(pushed).toBeGreaterThan(64 * 1024 * 1024);
    expect(socket.resumes).toBe(0);
    await reader.read(pushed - 64 * 1024 * 1024);
    expect(socket.resumes).toBe(1);
  });

  it('hands over to a sink: unread bytes first, then a recv that landed in its own buffer, then the sink\'s buffers, then the end', async () => {
    const { reader, socket } = attached();
    recv(reader, Buffer.from([1, 2, 3, 4, 5, 6, 7]));
    expect([...(await reader.read(1))]).toEqual([1]);
    // Node asked for the next recv's buffer before the handover: it is the reader's own.
    const next = reader.onread.buffer;
    if (typeof next !== 'function') throw new Error('expected a buffer function');
    const issued = next();
    const sink = new RecordingSink();
    reader.deliverTo(sink);
    expect(sink.got).toEqual([2, 3, 4, 5, 6, 7]);
    issued.set([8, 9]);
    reader.onread.callback(2, issued);
    expect(sink.got).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(next()).toBe(sink.scratch);
    sink.scratch.set([10]);
    reader.onread.callback(1, sink.scratch);
    expect(sink.got.at(-1)).toBe(10);
    await expect(reader.read(1)).rejects.toThrow(/handed to a sink/);
    expect(sink.end).toBeUndefined();
    socket.emit('close');
    expect(sink.end).toBeInstanceOf(StreamEndedError);
  });

  it('rejects a waiting read when the stream ends, with the socket\'s error as the cause', async () => {
    const { reader, socket } = attached();
    const waiting = reader.read(4);
    recv(reader, Buffer.from([1]));
    const boom = new Error('ECONNRESET');
    socket.emit('error', boom);
    socket.emit('close');
    const err = await waiting.then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(StreamEndedError);
    expect((err as StreamEndedError).message).toBe('connection lost: ECONNRESET');
    expect((err as StreamEndedError).cause).toBe(boom);
  });

  it("takes 'data' chunks where the socket cannot receive in place: copied into the sink's buffers, split to fit", async () => {
    const reader = new SocketReader();
    const socket = new FakeSocket();
    reader.attach(socket as unknown as Socket, 'data');
    expect(socket.resumes).toBe(1);
    socket.emit('data', Buffer.from([1, 2, 3]));
    expect([...(await reader.read(2))]).toEqual([1, 2]);
    const sink = new RecordingSink();
    reader.deliverTo(sink);
    socket.emit('data', Buffer.from([4, 5, 6, 7, 8, 9, 10, 11, 12]));
    expect(sink.got).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('deliverChunks: unread bytes first, then each recv, as buffers of their own that later recvs do not change', async () => {
    const { reader } = attached();
    recv(reader, Buffer.from([1, 2, 3]));
    expect([...(await reader.read(1))]).toEqual([1]);
    const chunks: Buffer[] = [];
    reader.deliverChunks((chunk) => chunks.push(chunk));
    recv(reader, Buffer.from([4, 5]));
    recv(reader, Buffer.from([6]));
    // recv() overwrites the memory it handed out after each callback: kept views would show 0x77.
    expect(chunks.map((c) => [...c])).toEqual([[2, 3], [4, 5], [6]]);
  });

  it('discards everything after discardRest(), reading on (resumed) so that the close is seen', () => {
    const { reader, socket } = attached();
    const sink = new RecordingSink();
    reader.deliverTo(sink);
    recv(reader, Buffer.from([1, 2]));
    reader.discardRest();
    expect(socket.resumes).toBe(1);
    recv(reader, Buffer.alloc(1000, 9));
    expect(sink.got).toEqual([1, 2]);
  });
});
