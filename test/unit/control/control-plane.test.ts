import http from 'node:http';
import net from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ControlClient, ControlError, socketDistrust } from '../../../src/control/control-client.js';
import { ControlServer, type ControlLimits } from '../../../src/control/control-server.js';
import { ControlRefusal, type FinishProgress, type MigrationControl, type MigrationStatus } from '../../../src/control/migration-control.js';
import { silentLogger } from '../../../src/log/logger.js';

/** A migration whose answers the test scripts: the control plane is tested, not the engine. */
class ScriptedMigration implements MigrationControl {
  phase = 'unsealed';
  finishSteps: FinishProgress[] = [];
  finishFailsAfterStart: Error | undefined;
  /** Between progress steps; past the server's progress throttle (200 ms) unless a test wants it skipped. */
  finishStepMs = 210;
  notes: Array<string | undefined> = [];
  status(): MigrationStatus {
    return { phase: this.phase };
  }
  async seal(): Promise<void> {
    if (this.phase !== 'unsealed') throw new ControlRefusal('the source is already sealed', 'nothing to do');
    this.phase = 'sealed';
  }
  async checkpoint(note?: string): Promise<void> {
    if (this.phase !== 'sealed') throw new ControlRefusal('nothing to checkpoint', 'seal first');
    this.notes.push(note);
  }
  async finish(onProgress: (p: FinishProgress) => void): Promise<void> {
    if (this.phase !== 'sealed') throw new ControlRefusal('finish refused: not sealed', 'seal it first');
    for (const step of this.finishSteps) {
      onProgress(step);
      await new Promise((r) => setTimeout(r, this.finishStepMs));
    }
    if (this.finishFailsAfterStart) throw this.finishFailsAfterStart;
    this.phase = 'finished';
  }
}

/** A sealed migration whose finish reports `steps`, then fails with `error`. */
function finishThatFails(error: Error, steps: FinishProgress[] = [{ done: 0, total: 5 }], stepMs = 210): ScriptedMigration {
  const m = new ScriptedMigration();
  m.phase = 'sealed';
  m.finishSteps = steps;
  m.finishStepMs = stepMs;
  m.finishFailsAfterStart = error;
  return m;
}

const dirs: string[] = [];
const servers: ControlServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function start(migration: MigrationControl): Promise<{ client: ControlClient; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
  dirs.push(dir);
  const path = join(dir, 'sub', 'control.sock');
  const server = new ControlServer(migration, silentLogger);
  await server.listen(path);
  servers.push(server);
  return { client: new ControlClient(path), path };
}

function raw(path: string, method: string, url: string, body?: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: path, method, path: url }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('control plane over a unix socket', () => {
  it("passes a checkpoint's note, and refuses a body that is not one with 400 and the fix", async () => {
    const m = new ScriptedMigration();
    m.phase = 'sealed';
    const { client, path } = await start(m);
    await client.checkpoint('copy: 42 bytes');
    await client.checkpoint();
    // The limit is the note's: one of 4096 bytes that JSON escapes to more (quotes, control characters) is kept.
    const escaped = '"\u0001'.repeat(2048);
    await client.checkpoint(escaped);
    expect(m.notes).toEqual(['copy: 42 bytes', undefined, escaped]);
    for (const body of ['not json', JSON.stringify({ note: 42 }), JSON.stringify({ note: 'x'.repeat(4097) }), JSON.stringify({ note: 'x'.repeat(50_000) })]) {
      const refused = await raw(path, 'POST', '/checkpoint', body);
      expect(refused.code).toBe(400);
      expect(JSON.parse(refused.body).fix).toMatch(/\{"note": "…"\} as JSON, with a note of at most 4096 bytes/);
    }
    expect(m.notes).toHaveLength(3);
  });

  it('seals, checkpoints and reports status; refusals come back as errors with their fix', async () => {
    const m = new ScriptedMigration();
    const { client } = await start(m);
    expect(await client.status()).toEqual({ phase: 'unsealed' });
    await expect(client.checkpoint()).rejects.toMatchObject({ message: 'nothing to checkpoint', fix: 'seal first' });
    expect(await client.seal()).toEqual({ phase: 'sealed' });
    const again = client.seal();
    await expect(again).rejects.toBeInstanceOf(ControlError);
    await expect(again).rejects.toMatchObject({ fix: 'nothing to do' });
  });

  it('answers 409 for a refusal and 404 for an unknown request, as JSON with a fix', async () => {
    const { path } = await start(new ScriptedMigration());
    const refused = await raw(path, 'POST', '/finish');
    expect(refused.code).toBe(409);
    expect(JSON.parse(refused.body)).toEqual({ error: 'finish refused: not sealed', fix: 'seal it first' });
    const unknown = await raw(path, 'DELETE', '/everything');
    expect(unknown.code).toBe(404);
    expect(JSON.parse(unknown.body).fix).toMatch(/GET \/status/);
    // A known path with another method: 405, saying which method it takes (and nothing was done).
    const wrongMethod = await raw(path, 'GET', '/seal');
    expect([wrongMethod.code, JSON.parse(wrongMethod.body).fix]).toEqual([405, 'send POST']);
    expect((await raw(path, 'GET', '/status')).body).toMatch(/"phase":"unsealed"/);
  });

  it('streams finish progress, then the final status', async () => {
    const m = new ScriptedMigration();
    m.phase = 'sealed';
    m.finishSteps = [{ done: 0, total: 3 }, { done: 2, total: 3 }, { done: 3, total: 3 }];
    const { client } = await start(m);
    const seen: FinishProgress[] = [];
    expect(await client.finish((p) => seen.push(p))).toEqual({ phase: 'finished' });
    expect(seen).toEqual(m.finishSteps);
  });

  it('reports a finish that fails after it began as an error line, with the fix', async () => {
    const { client } = await start(finishThatFails(Object.assign(new Error('disk write failed'), { fix: 'check the disk, then run finish again' })));
    await expect(client.finish(() => undefined)).rejects.toMatchObject({ message: 'disk write failed', fix: 'check the disk, then run finish again' });
  });

  it('says finish resumes when run again, for a failure that brings no fix of its own (a disk error, say)', async () => {
    const { client } = await start(finishThatFails(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })));
    await expect(client.finish(() => undefined)).rejects.toMatchObject({
      message: 'ENOSPC: no space left on device, write',
      fix: 'see the server log for the cause; once it is mended, run finish again: it resumes where it stopped',
    });
  });

  it('sends the newest progress it held back before the error of a finish that fails', async () => {
    // Steps faster than the server's throttle: only the first is sent at once.
    const steps = [{ done: 0, total: 9 }, { done: 4, total: 9 }, { done: 7, total: 9 }];
    const { client } = await start(finishThatFails(Object.assign(new Error('finish stopped because the server is stopping'), { fix: 'run finish again' }), steps, 0));
    const seen: FinishProgress[] = [];
    await expect(client.finish((p) => seen.push(p))).rejects.toMatchObject({ message: 'finish stopped because the server is stopping' });
    expect(seen).toEqual([{ done: 0, total: 9 }, { done: 7, total: 9 }]);
  });

  it('says the server went away when it closes the connection before answering, with what to do', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    const path = join(dir, 'control.sock');
    // A server that starts a streamed answer, then dies.
    const dying = net.createServer((socket) =>
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\ntransfer-encoding: chunked\r\n\r\n');
        const line = '{"progress":{"done":0,"total":5}}\n';
        socket.write(`${Buffer.byteLength(line).toString(16)}\r\n${line}\r\n`);
        setTimeout(() => socket.destroy(), 20);
      }),
    );
    await new Promise<void>((resolve) => dying.listen(path, resolve));
    try {
      const failure = await new ControlClient(path).finish(() => undefined).catch((err: unknown) => err);
      expect(failure).toBeInstanceOf(ControlError);
      expect((failure as ControlError).message).toMatch(/closed the connection before answering: it stopped or crashed/);
      expect((failure as ControlError).fix).toMatch(/finish and copy resume where they stopped/);
    } finally {
      await new Promise((resolve) => dying.close(resolve));
    }
  });

  it('refuses a second server on a socket that answers, and names the fix', async () => {
    const { path } = await start(new ScriptedMigration());
    const second = new ControlServer(new ScriptedMigration(), silentLogger);
    await expect(second.listen(path)).rejects.toMatchObject({ fix: expect.stringMatching(/--control/) });
  });

  it('says how to start a server when nothing answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    await expect(new ControlClient(join(dir, 'none.sock')).status()).rejects.toMatchObject({ fix: expect.stringMatching(/nbd-remapper serve/) });
  });
});

describe('control socket limits (G8)', () => {
  /** Resolves when the server closes the connection; `sent` is written first. */
  function heldConnection(path: string, sent = ''): { closed: Promise<string>; socket: net.Socket } {
    const socket = net.connect(path, () => {
      if (sent) socket.write(sent);
    });
    let got = '';
    socket.on('data', (c: Buffer) => (got += c.toString()));
    socket.on('error', () => undefined);
    const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(got)));
    return { closed, socket };
  }

  async function startLimited(limits: ControlLimits): Promise<string> {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    const path = join(dir, 'control.sock');
    const server = new ControlServer(new ScriptedMigration(), silentLogger, limits);
    await server.listen(path);
    servers.push(server);
    return path;
  }

  it('drops a client that does not finish its headers in time, and one that sends nothing', async () => {
    const path = await startLimited({ maxConnections: 8, headersTimeoutMs: 300, requestTimeoutMs: 5000 });
    const started = Date.now();
    const slow = heldConnection(path, 'GET /status HTTP/1.1\r\nHost: x\r\n');
    const silent = heldConnection(path);
    const [slowGot] = await Promise.all([slow.closed, silent.closed]);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(slowGot).toMatch(/^HTTP\/1.1 408/);
    // Still serving.
    expect((await raw(path, 'GET', '/status')).code).toBe(200);
  });

  it('caps connections: one over the cap is closed at once, the held ones still get answers', async () => {
    const path = await startLimited({ maxConnections: 3, headersTimeoutMs: 5000, requestTimeoutMs: 10_000 });
    const held = [heldConnection(path), heldConnection(path), heldConnection(path)];
    await new Promise((resolve) => setTimeout(resolve, 100));
    const over = heldConnection(path);
    expect(await over.closed).toBe('');
    held[0].socket.write('GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(await held[0].closed).toMatch(/^HTTP\/1.1 200[\s\S]*"phase":"unsealed"/);
    for (const h of held) h.socket.destroy();
  });
});

describe('the control socket is the server’s own', () => {
  it('refuses a --control path that names an existing file, and leaves the file as it was (a mistyped path once deleted the state file)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    const precious = join(dir, 'disk.img.remap-state');
    writeFileSync(precious, 'precious');
    await expect(new ControlServer(new ScriptedMigration(), silentLogger).listen(precious)).rejects.toMatchObject({
      message: expect.stringMatching(/names an existing file, not a socket/),
      fix: expect.stringMatching(/nothing there was changed/),
    });
    expect(readFileSync(precious, 'utf8')).toBe('precious');
  });

  it('answers a request whose target is not a path with 400, and goes on serving (it stopped the whole server)', async () => {
    const { path } = await start(new ScriptedMigration());
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(path, () => socket.write('GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let got = '';
      socket.on('data', (c: Buffer) => (got += c.toString()));
      socket.on('close', () => resolve(got));
    });
    expect(answer).toMatch(/^HTTP\/1.1 400[\s\S]*not a request path/);
    expect((await raw(path, 'GET', '/status')).code).toBe(200);
  });

  it('refuses a socket directory everyone may write to, unless it is sticky like /tmp', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    chmodSync(dir, 0o777);
    await expect(new ControlServer(new ScriptedMigration(), silentLogger).listen(join(dir, 'control.sock'))).rejects.toMatchObject({
      message: expect.stringMatching(/is writable by everyone: someone else could put their own socket in its place/),
    });
    chmodSync(dir, 0o1777);
    const server = new ControlServer(new ScriptedMigration(), silentLogger);
    await server.listen(join(dir, 'control.sock'));
    servers.push(server);
  });

  it('the client asks no socket that belongs to another user (but root), and no file that is not a socket', () => {
    const socket = (uid: number) => ({ isSocket: () => true, uid });
    expect(socketDistrust('/x/control.sock', socket(1000), 1000)).toBeUndefined();
    expect(socketDistrust('/x/control.sock', socket(0), 1000)).toBeUndefined();
    expect(socketDistrust('/x/control.sock', socket(1234), 1000)?.message).toMatch(/belongs to uid 1234, not to you \(uid 1000\) or root/);
    expect(socketDistrust('/x/control.sock', { isSocket: () => false, uid: 1000 }, 1000)?.message).toMatch(/is not a socket/);
  });

  it('says that what answers is not a control plane when the reply is not JSON (it was "unexpected error … a bug")', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-control-'));
    dirs.push(dir);
    const path = join(dir, 'other.sock');
    const other = http.createServer((_req, res) => {
      res.writeHead(502);
      res.end('nope!');
    });
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      await expect(new ControlClient(path).status()).rejects.toMatchObject({ message: expect.stringMatching(/is not an nbd-remapper control plane \(HTTP 502: "nope!"\)/) });
      await expect(new ControlClient(path).finish(() => undefined)).rejects.toBeInstanceOf(ControlError);
    } finally {
      await new Promise((resolve) => other.close(resolve));
    }
  });
});
