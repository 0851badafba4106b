import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adoptAcceptedSocket } from '../../../src/net/adopt-accepted-socket.js';

const socketPath = (): string => join(tmpdir(), `adopt-${process.pid}-${Math.random().toString(16).slice(2)}.sock`);

function listen(onAccepted: (accepted: net.Socket) => void): Promise<{ server: net.Server; path: string }> {
  const path = socketPath();
  const server = net.createServer({ pauseOnConnect: true }, onAccepted);
  return new Promise((resolve) => server.listen(path, () => resolve({ server, path })));
}

describe('adoptAcceptedSocket', () => {
  it('on this Node, receives into the memory onread picks, writes back, sees the peer close, and lets the server close', async () => {
    const mine = Buffer.alloc(64 * 1024);
    const landed: number[] = [];
    let adopted: net.Socket | undefined;
    let adoptedClosed!: Promise<void>;
    const { server, path } = await listen((accepted) => {
      adopted = adoptAcceptedSocket(accepted, {
        buffer: () => mine,
        callback: (bytes) => {
          landed.push(...mine.subarray(0, bytes));
          adopted?.write(Buffer.from(mine.subarray(0, bytes)));
          return true;
        },
      });
      const socket = adopted;
      adoptedClosed = new Promise((resolve) => socket?.once('close', () => resolve()));
    });
    const client = net.connect(path, () => client.write(Buffer.from([1, 2, 3, 4, 5])));
    const echoed = await new Promise<Buffer>((resolve) => {
      let got = Buffer.alloc(0);
      client.on('data', (chunk: Buffer) => {
        got = Buffer.concat([got, chunk]);
        if (got.length === 5) resolve(got);
      });
    });
    expect(adopted).toBeInstanceOf(net.Socket);
    expect(landed).toEqual([1, 2, 3, 4, 5]);
    expect(echoed).toEqual(Buffer.from([1, 2, 3, 4, 5]));
    client.end();
    await adoptedClosed;
    // The accepted shell was destroyed without its handle: the server counts no connection and closes.
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  it('declines a socket without a usable handle, leaving it to its data events', () => {
    const socket = new net.Socket();
    expect(adoptAcceptedSocket(socket, { buffer: Buffer.alloc(1), callback: () => true })).toBeUndefined();
    socket.destroy();
  });
});
