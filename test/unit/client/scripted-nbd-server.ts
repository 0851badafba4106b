import net from 'node:net';
import { HandshakeMachine, decodeRequest, type ExportRegistry } from 'nbd-protocol-ts';
import { scratchDir } from '../../helpers/scratch.js';

export interface ScriptedServer {
  uri: string;
  close(): Promise<void>;
}

/** A server on a unix socket whose every move a test scripts, for misbehaviour our own server never shows. */
export async function scriptedServer(onConnection: (socket: net.Socket) => void): Promise<ScriptedServer> {
  const dir = scratchDir();
  const path = dir.file('scripted.sock');
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    uri: `nbd+unix:///mem?socket=${path}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          dir.cleanup();
          resolve();
        });
      }),
  };
}

export interface RequestHeader {
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

/**
 * Runs the real handshake for the registry's exports, then hands the socket
 * and each request header (these tests send no WRITE payloads) to the script.
 * `extra` is written right after the handshake's last reply, so the client
 * receives both in the same read.
 */
export function handshakeThen(
  registry: ExportRegistry,
  onRequest: (socket: net.Socket, request: RequestHeader) => void,
  extra: Buffer = Buffer.alloc(0),
): (socket: net.Socket) => void {
  return (socket) => {
    const machine = new HandshakeMachine(registry);
    socket.write(machine.greeting());
    let pending = Buffer.alloc(0);
    let transmission = false;
    socket.on('data', (chunk: Buffer) => {
      if (!transmission) {
        for (const event of machine.push(chunk)) {
          if (event.type === 'send') socket.write(event.data);
          else if (event.type === 'close') socket.end();
          else if (event.type === 'done') {
            transmission = true;
            if (extra.length > 0) socket.write(extra);
          }
        }
        return;
      }
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 28) {
        const { type, cookie, offset, length } = decodeRequest(pending);
        pending = pending.subarray(28);
        onRequest(socket, { type, cookie, offset, length });
      }
    });
  };
}

/** Writes `bytes` in pieces of 1 to `maxPiece` bytes, one event-loop turn apart, so the client receives them in many reads. */
export async function writeInPieces(socket: net.Socket, bytes: Buffer, maxPiece: number, random: (n: number) => number): Promise<void> {
  for (let at = 0; at < bytes.length && !socket.destroyed; ) {
    const n = Math.min(1 + random(maxPiece), bytes.length - at);
    socket.write(bytes.subarray(at, at + n));
    at += n;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** A seeded generator of integers in [0, n), so "random" splits repeat run to run. */
export function seeded(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % n;
  };
}
