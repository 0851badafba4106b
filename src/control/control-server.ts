import { chmodSync, lstatSync, mkdirSync, statSync, unlinkSync, type Stats } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname } from 'node:path';
import { fixOf, messageOf } from '../log/describe-failure.js';
import type { Logger } from '../log/logger.js';
import type { FinishProgress, MigrationControl } from './migration-control.js';
import { unixSocketPathTooLong } from '../net/unix-socket-path.js';
import { MAX_NOTE_BODY_BYTES, MAX_NOTE_BYTES } from './checkpoint-note.js';

/** Idle or slow clients must not pile up (G8): a local tool needs a handful of connections, and seconds per request. */
export interface ControlLimits {
  maxConnections: number;
  /** A client must have sent its request's headers by then, counted from when the request (or the connection) began. */
  headersTimeoutMs: number;
  /** Whole request, headers and body; a finish streams its response for as long as it runs, which this does not limit. */
  requestTimeoutMs: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = { maxConnections: 32, headersTimeoutMs: 10_000, requestTimeoutMs: 30_000 };

/**
 * The control plane: HTTP with JSON bodies on a unix socket (Docker's
 * convention), so it is scriptable with `curl --unix-socket` and the CLI is just
 * one client of it.
 *
 *   GET  /status       → status JSON
 *   POST /seal         → status JSON after sealing
 *   POST /checkpoint   → status JSON after the checkpoint; an optional body {"note": "…"} (at most
 *                        MAX_NOTE_BYTES) is kept with it in the state and shown by status as checkpointNote
 *   POST /finish       → NDJSON stream: {"progress":{done,total}}… then {"finished":status} or {"error",fix}
 *
 * Refusals are 409 with {"error","fix"}; unknown paths 404.
 */
export class ControlServer {
  private server: http.Server | undefined;

  constructor(
    private readonly control: MigrationControl,
    private readonly log: Logger,
    private readonly limits: ControlLimits = DEFAULT_CONTROL_LIMITS,
  ) {}

  async listen(path: string): Promise<void> {
    const tooLong = unixSocketPathTooLong(path);
    if (tooLong !== undefined) throw Object.assign(new Error(tooLong), { fix: 'choose a shorter --control path, e.g. /run/nbd-remapper/control.sock' });
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    assertTrustedDirectory(dirname(path));
    const existing = lstatOrUndefined(path);
    if (existing !== undefined) {
      // Only a socket left by a server that is gone is ours to remove: anything else at the path (a mistyped
      // --control naming the state file, the disk image, any file) is refused, never deleted.
      if (!existing.isSocket()) {
        throw Object.assign(new Error(`--control ${path} names an existing ${kindOf(existing)}, not a socket`), {
          fix: 'give --control a path where the server can create its socket (default: next to the state file); nothing there was changed',
        });
      }
      if (await socketAnswers(path)) {
        throw Object.assign(new Error(`control socket ${path} belongs to another running server`), {
          fix: 'stop that server, or give this one another path with --control',
        });
      }
      unlinkSync(path);
    }
    const { maxConnections, headersTimeoutMs, requestTimeoutMs } = this.limits;
    // Node checks the deadlines every connectionsCheckingInterval (30 s by default, which would stretch a
    // 10 s deadline to 40 s): check often enough that a deadline means what it says.
    const connectionsCheckingInterval = Math.max(10, Math.min(1000, Math.floor(headersTimeoutMs / 4)));
    const server = http.createServer({ headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, connectionsCheckingInterval }, (req, res) =>
      // A failure the handler did not answer must not become an unhandled rejection: that would stop the whole server.
      void this.handle(req, res).catch((err: unknown) => {
        this.log.error(`control request failed: ${messageOf(err)}`);
        if (!res.headersSent) sendJson(res, 500, { error: messageOf(err), fix: 'see the server log' });
        else res.destroy();
      }),
    );
    server.maxConnections = maxConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // The socket is bound within listen(): created owner-only under this umask, so no one else can connect
      // between its creation and the chmod below (a umask of 0 made it open to everyone for that moment).
      const umask = process.umask(0o177);
      try {
        server.listen(path, () => resolve());
      } finally {
        process.umask(umask);
      }
    });
    // Seal and finish are irreversible: only the server's owner may connect, whatever the umask.
    chmodSync(path, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = routeOf(req);
    if (route === undefined) return sendJson(res, 400, { error: `not a request path: ${req.url ?? ''}`, fix: 'use GET /status, POST /seal, /checkpoint or /finish' });
    try {
      switch (route) {
        case 'GET /status':
          return sendJson(res, 200, this.control.status());
        case 'POST /seal':
          await this.control.seal();
          this.log.info('source sealed: it is read-only from now on, and destination accepts writes');
          return sendJson(res, 200, this.control.status());
        case 'POST /checkpoint': {
          const note = await readNote(req);
          await this.control.checkpoint(note);
          this.log.info(`checkpoint: everything read from source so far is confirmed copied${note === undefined ? '' : ` (note: ${note})`}`);
          return sendJson(res, 200, this.control.status());
        }
        case 'POST /finish':
          return await this.finish(res);
        default: {
          const allowed = METHOD_OF[route.slice(route.indexOf(' ') + 1)];
          if (allowed !== undefined) {
            res.setHeader('allow', allowed);
            return sendJson(res, 405, { error: `${route} is not a control request: ${route.slice(route.indexOf(' ') + 1)} takes ${allowed}`, fix: `send ${allowed}` });
          }
          return sendJson(res, 404, { error: `no such control request: ${route}`, fix: 'use GET /status, POST /seal, /checkpoint or /finish' });
        }
      }
    } catch (err) {
      const fix = fixOf(err);
      const message = messageOf(err);
      if (err instanceof BadRequest) return sendJson(res, 400, { error: message, fix: err.fix });
      if (fix !== undefined) return sendJson(res, 409, { error: message, fix });
      this.log.error(`control ${route} failed: ${message}`);
      return sendJson(res, 500, { error: message, fix: 'see the server log' });
    }
  }

  /** Streams progress as NDJSON once finish has begun; a refusal before that is a plain 409 like the others. */
  private async finish(res: http.ServerResponse): Promise<void> {
    let streaming = false;
    const stream = (): void => {
      if (streaming) return;
      streaming = true;
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    };
    let last = -Infinity;
    // The newest progress not sent yet (sends are throttled to 5 a second): a failure sends it first.
    let unsent: FinishProgress | undefined;
    try {
      await this.control.finish((progress) => {
        stream();
        const now = performance.now();
        if (now - last < 200 && progress.done < progress.total) {
          unsent = progress;
          return;
        }
        last = now;
        unsent = undefined;
        res.write(JSON.stringify({ progress }) + '\n');
      });
      stream();
      res.end(JSON.stringify({ finished: this.control.status() }) + '\n');
    } catch (err) {
      if (!streaming) throw err;
      if (unsent !== undefined) res.write(JSON.stringify({ progress: unsent }) + '\n');
      const resume = 'see the server log for the cause; once it is mended, run finish again: it resumes where it stopped';
      res.end(JSON.stringify({ error: messageOf(err), fix: fixOf(err) ?? resume }) + '\n');
    }
  }
}


/** The method each path takes: another method on a known path is 405, not 404. */
const METHOD_OF: Readonly<Record<string, string>> = { '/status': 'GET', '/seal': 'POST', '/checkpoint': 'POST', '/finish': 'POST' };

/** A request body this plane cannot use: 400 with what to send instead. */
class BadRequest extends Error {
  readonly fix = `send no body, or {"note": "…"} as JSON, with a note of at most ${MAX_NOTE_BYTES} bytes`;
}

/** The optional {"note": string} body of POST /checkpoint. */
async function readNote(req: http.IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > MAX_NOTE_BODY_BYTES) throw new BadRequest(`the checkpoint request's body is larger than ${MAX_NOTE_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (bytes === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new BadRequest("the checkpoint request's body is not JSON");
  }
  const note = (value as { note?: unknown } | null)?.note;
  if (note === undefined) return undefined;
  if (typeof note !== 'string' || Buffer.byteLength(note) > MAX_NOTE_BYTES) throw new BadRequest(`the checkpoint's note must be a string of at most ${MAX_NOTE_BYTES} bytes`);
  return note;
}

function sendJson(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** `METHOD /path`, or undefined when the request's target is not a path this plane can read. */
function routeOf(req: http.IncomingMessage): string | undefined {
  try {
    return `${req.method} ${new URL(req.url ?? '/', 'http://control').pathname}`;
  } catch {
    return undefined;
  }
}

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function kindOf(stats: Stats): string {
  if (stats.isFile()) return 'file';
  if (stats.isDirectory()) return 'directory';
  if (stats.isSymbolicLink()) return 'symbolic link';
  if (stats.isBlockDevice()) return 'block device';
  return 'file of another kind';
}

/**
 * Whoever can replace the socket in its directory can stand in for this
 * server, and a directory everyone may write to lets anyone do that: it is
 * refused, unless it is sticky (/tmp), where others cannot rename or remove
 * what this user made. A directory another user owns is let through (root
 * serving with --control beside a user's image): its owner could swap the
 * socket, but the CLI asks no socket that belongs to anyone but the caller
 * or root (control-client.ts, socketDistrust).
 */
function assertTrustedDirectory(dir: string): void {
  const stats = statSync(dir);
  const sticky = (stats.mode & 0o1000) !== 0;
  const writableByAll = (stats.mode & 0o002) !== 0;
  if (!writableByAll || sticky) return;
  throw Object.assign(new Error(`the control socket's directory ${dir} is writable by everyone: someone else could put their own socket in its place`), {
    fix: `use a directory only you can write to (chmod o-w ${dir}, or another --control path)`,
  });
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}
