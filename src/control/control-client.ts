import { lstatSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FinishProgress, MigrationStatus } from './migration-control.js';
import { unixSocketPathTooLong } from '../net/unix-socket-path.js';

/** One default that `serve` and every control command share, so none needs the other's arguments. */
export function defaultControlPath(): string {
  if (process.env.NBD_REMAPPER_CONTROL) return process.env.NBD_REMAPPER_CONTROL;
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? '/run/nbd-remapper/control.sock' : join(tmpdir(), `nbd-remapper-${uid}`, 'control.sock');
}

/** The control plane refused or failed; message and fix come from the server. */
export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/**
 * Seal and finish are irreversible and their answers are believed: a socket
 * someone else made (in a directory they can write to) could answer
 * "finished" for a server that never finished. A server's socket belongs to
 * the user who started it, and only that user can connect (mode 0600); one
 * that belongs to anyone else but root is refused before a word is sent.
 */
function untrustedSocket(socketPath: string): ControlError | undefined {
  let stats;
  try {
    stats = lstatSync(socketPath);
  } catch {
    return undefined;
  }
  return socketDistrust(socketPath, stats, process.getuid?.());
}

/** Why the file at `socketPath` is not to be asked, or undefined when it may be (untrustedSocket). */
export function socketDistrust(socketPath: string, stats: { isSocket(): boolean; uid: number }, uid: number | undefined): ControlError | undefined {
  if (!stats.isSocket()) return new ControlError(`${socketPath} is not a socket`, 'pass the --control path the server printed when it started');
  if (uid === undefined || stats.uid === uid || stats.uid === 0) return undefined;
  return new ControlError(
    `the control socket ${socketPath} belongs to uid ${stats.uid}, not to you (uid ${uid}) or root: it is not a server you started`,
    'run the command as the user that started the server, or pass that server\'s --control path',
  );
}

function request(socketPath: string, method: string, path: string, onLine?: (line: string) => void, body?: unknown): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const tooLong = unixSocketPathTooLong(socketPath);
    if (tooLong !== undefined) return reject(new ControlError(tooLong, 'pass the --control path the server printed when it started; no server can listen on this one'));
    const untrusted = untrustedSocket(socketPath);
    if (untrusted !== undefined) return reject(untrusted);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers = payload === undefined ? undefined : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    const req = http.request({ socketPath, method, path, headers }, (res) => {
      let body = '';
      let pending = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
        if (!onLine) return;
        pending += chunk;
        let nl: number;
        while ((nl = pending.indexOf('\n')) >= 0) {
          onLine(pending.slice(0, nl));
          pending = pending.slice(nl + 1);
        }
      });
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      res.on('error', () => reject(wentAway(socketPath)));
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new ControlError(`no nbd-remapper server answers on ${socketPath}`, 'start one with `nbd-remapper serve`, or point at its socket with --control PATH (a server started with --read-only has none: it serves the disk, with no migration to control)'));
      } else if (err.code === 'EACCES') {
        reject(new ControlError(`no permission to use ${socketPath}`, 'run as the user that started the server (often root)'));
      } else if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
        reject(wentAway(socketPath));
      } else reject(err);
    });
    req.end(payload);
  });
}

/** The server closed the control connection before it answered: it stopped or crashed — or it has all the control connections it takes open. */
function wentAway(socketPath: string): ControlError {
  return new ControlError(
    `the server on ${socketPath} closed the connection before answering: it stopped or crashed, or it has its limit of control connections (32) open`,
    'run `nbd-remapper status` again; if nothing answers, see the server log and start it again with the same --state, then run the same command again (finish and copy resume where they stopped)',
  );
}

/** What answered is not this control plane (another program's socket, a proxy): said as such, not as a bug. */
function notControlPlane(socketPath: string, code: number, text: string): ControlError {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return new ControlError(
    `what answers on ${socketPath} is not an nbd-remapper control plane (HTTP ${code}: ${JSON.stringify(shown)})`,
    'pass the --control path `nbd-remapper serve` printed when it started',
  );
}

function parseJson<T>(socketPath: string, code: number, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    throw notControlPlane(socketPath, code, text);
  }
}

function parse<T>(socketPath: string, reply: { code: number; body: string }): T {
  const value = parseJson<T & { error?: string; fix?: string }>(socketPath, reply.code, reply.body);
  if (reply.code !== 200) throw new ControlError(value.error ?? `control plane answered ${reply.code}`, value.fix ?? 'see the server log');
  return value;
}

export class ControlClient {
  constructor(readonly socketPath: string) {}

  async status(): Promise<MigrationStatus> {
    return parse<MigrationStatus>(this.socketPath, await request(this.socketPath, 'GET', '/status'));
  }
  async seal(): Promise<MigrationStatus> {
    return parse<MigrationStatus>(this.socketPath, await request(this.socketPath, 'POST', '/seal'));
  }
  /** `note`: kept with the checkpoint in the state (a copier's progress), shown by status as checkpointNote. */
  async checkpoint(note?: string): Promise<MigrationStatus> {
    return parse<MigrationStatus>(this.socketPath, await request(this.socketPath, 'POST', '/checkpoint', undefined, note === undefined ? undefined : { note }));
  }
  async finish(onProgress: (p: FinishProgress) => void): Promise<MigrationStatus> {
    let result: MigrationStatus | undefined;
    let failure: ControlError | undefined;
    const reply = await request(this.socketPath, 'POST', '/finish', (line) => {
      if (!line.trim() || failure !== undefined) return;
      let event: { progress?: FinishProgress; finished?: MigrationStatus; error?: string; fix?: string };
      try {
        event = parseJson(this.socketPath, 200, line);
      } catch (err) {
        failure = err as ControlError;
        return;
      }
      if (event.progress) onProgress(event.progress);
      if (event.finished) result = event.finished;
      if (event.error) failure = new ControlError(event.error, event.fix ?? 'see the server log');
    });
    if (reply.code !== 200) return parse<MigrationStatus>(this.socketPath, reply);
    if (failure) throw failure;
    if (!result) throw new ControlError('the server ended finish without a result', 'see the server log; run finish again (it resumes)');
    return result;
  }
}
