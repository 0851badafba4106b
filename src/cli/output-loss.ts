import { closeSync } from 'node:fs';
import { isatty } from 'node:tty';

/**
 * A server must outlive the reader of its output. When the terminal closes
 * (EIO), or the pipe it logs into loses its reader (`serve … | tee log` and tee
 * dies, a log collector restarts: EPIPE), Node reports the failed write as an
 * 'error' event on process.stdout/stderr, and an 'error' nobody handles kills
 * the process: in the middle of a migration, with clients attached, and before
 * a stop could carry RAM-held data into the state. Here a lost stream is only
 * noted: its later lines are dropped, serving goes on, and the stop signals
 * still stop cleanly.
 */
export interface OutputStreams {
  readonly stdout: NodeJS.WritableStream & NodeJS.EventEmitter;
  readonly stderr: NodeJS.WritableStream & NodeJS.EventEmitter;
}

export interface OutputWatch {
  /** Call once the server has stopped, before the process exits. */
  beforeExit(): void;
}

const STDIO_FDS = [0, 1, 2] as const;

export function surviveOutputLoss(streams: OutputStreams = process): OutputWatch {
  const lost = new Set<string>();
  let terminalHungUp = false;
  const terminals = STDIO_FDS.filter((fd) => isatty(fd));
  const watch = (name: 'stdout' | 'stderr', other: 'stdout' | 'stderr'): void => {
    streams[name].on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EIO') terminalHungUp = true;
      if (lost.has(name)) return;
      lost.add(name);
      if (lost.has(other)) return;
      // The other stream may be a log file or a journal that is still read: say why these lines stop.
      streams[other].write(
        `${new Date().toISOString()} warn  ${name} is gone (${err.code ?? err.message}): the server goes on serving without it; ` +
          `\`nbd-remapper status\` shows the migration, and a stop signal still stops it cleanly\n`,
      );
    });
  };
  watch('stdout', 'stderr');
  watch('stderr', 'stdout');
  process.on('SIGHUP', () => (terminalHungUp = true));
  return {
    beforeExit() {
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
