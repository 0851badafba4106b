import { closeSync } from 'node:fs';
import { isatty } from 'node:tty';

/**
 * How a server writes its output: it must neither wait for the reader of it
 * nor die with it.
 *
 * - **Never wait.** Node writes to a terminal synchronously: a terminal that
 *   stops reading (Ctrl-S, an ssh session whose network stalls, so sshd stops
 *   draining the pty) blocks the next log line's write, and with it the event
 *   loop — every client's requests, until the kernel's nbd timeout fails
 *   them. Here, while serving, the terminal and pipe handles are non-blocking;
 *   what the reader has not taken stays queued up to MAX_UNWRITTEN bytes,
 *   later lines are dropped (counted, and said once the reader is back).
 * - **Never die.** When the terminal closes (EIO) or a log pipe loses its
 *   reader (EPIPE: `serve … | tee log` and tee dies), Node reports the failed
 *   write as an 'error' event, which unhandled kills the process in the middle
 *   of a migration. Here a lost stream is noted on the other one, and its
 *   lines are dropped; stop signals still stop cleanly.
 */
export interface OutputStream extends NodeJS.EventEmitter {
  write(text: string): boolean;
  readonly writableLength: number;
  /** Node's handle of a terminal or pipe; absent for files (written synchronously, never stalled by a reader). */
  readonly _handle?: { setBlocking?(blocking: boolean): number } | null;
}

export interface OutputStreams {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
}

export interface ServerOutput {
  /** Writes a line (without its newline) to stdout or stderr, or drops it (see above). */
  line(to: 'stdout' | 'stderr', text: string): void;
  /**
   * From now on never wait for a reader (once serving: until then, and again
   * from beforeExit, writes are synchronous, so an error that ends the process
   * is printed before it exits).
   */
  neverWait(): void;
  /**
   * Once the server has stopped: gives queued lines up to `waitMs` (default
   * 1 s) to leave, then readies the process to exit; `hungUp` when the stop
   * came from SIGHUP (the terminal may be gone).
   */
  beforeExit(options?: { hungUp?: boolean; waitMs?: number }): Promise<void>;
}

/** Output a reader has not taken, queued at most; 64 KiB is hundreds of log lines. */
const MAX_UNWRITTEN = 64 * 1024;

const STDIO_FDS = [0, 1, 2] as const;
type Name = 'stdout' | 'stderr';

export function serverOutput(streams: OutputStreams = process as unknown as OutputStreams, maxUnwritten = MAX_UNWRITTEN): ServerOutput {
  const lost = new Set<Name>();
  const dropped: Record<Name, number> = { stdout: 0, stderr: 0 };
  let terminalHungUp = false;
  const terminals = STDIO_FDS.filter((fd) => isatty(fd));
  const other = (name: Name): Name => (name === 'stdout' ? 'stderr' : 'stdout');
  const stamp = (): string => new Date().toISOString();

  const setBlocking = (blocking: boolean): void => {
    for (const name of ['stdout', 'stderr'] as const) streams[name]._handle?.setBlocking?.(blocking);
  };
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = streams[name];
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EIO') terminalHungUp = true;
      if (lost.has(name)) return;
      lost.add(name);
      // The other stream may be a log file or a journal that is still read: say why these lines stop.
      if (!lost.has(other(name))) {
        streams[other(name)].write(
          `${stamp()} warn  ${name} is gone (${err.code ?? err.message}): the server goes on serving without it; ` +
            `\`nbd-remapper status\` shows the migration, and a stop signal still stops it cleanly\n`,
        );
      }
    });
  }

  return {
    line(to, text) {
      const stream = streams[to];
      if (lost.has(to)) return;
      if (stream.writableLength > maxUnwritten) {
        dropped[to]++;
        return;
      }
      if (dropped[to] > 0) {
        stream.write(`${stamp()} warn  ${dropped[to]} line(s) of ${to} dropped: its reader (a terminal, a pipe) did not take them, and the server does not wait for it\n`);
        dropped[to] = 0;
      }
      stream.write(text + '\n');
    },
    neverWait: () => setBlocking(false),
    async beforeExit({ hungUp = false, waitMs = 1000 } = {}) {
      if (hungUp) terminalHungUp = true;
      const pending = (['stdout', 'stderr'] as const).filter((n) => !lost.has(n) && streams[n].writableLength > 0);
      if (pending.length > 0) {
        await Promise.race([Promise.all(pending.map((n) => drained(streams[n]))), new Promise<void>((resolve) => setTimeout(resolve, waitMs).unref())]);
      }
      setBlocking(true);
      // On exit Node restores the terminal's modes with tcsetattr and aborts when that fails, as it does
      // (EIO) once the terminal has hung up (nodejs/node#51519, fixed after Node 20): a clean stop would
      // end in a core dump and a non-zero status. Node skips descriptors that no longer name the
      // terminal it saw at start, so the hung-up terminal's are closed first; nothing is written after this.
      if (!terminalHungUp) return;
      for (const fd of terminals) {
        try {
          closeSync(fd);
        } catch {
          // Already closed: nothing for Node to restore either.
        }
      }
    },
  };
}

/** Settles once the stream has written what it queued, or failed. */
function drained(stream: OutputStream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('error', done);
  });
}
