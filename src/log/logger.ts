/**
 * A small structured logger. Every layer logs through this interface so tests can
 * capture lines and the CLI decides the sink (stderr, with timestamps).
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** A logger whose lines carry a prefix, e.g. the connection id. */
  child(prefix: string): Logger;
}

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export function createLogger(
  options: { level?: LogLevel; write?: (line: string) => void; prefix?: string } = {},
): Logger {
  const level = options.level ?? 'info';
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const prefix = options.prefix ?? '';
  const emit = (at: LogLevel, message: string): void => {
    if (RANK[at] < RANK[level]) return;
    write(`${new Date().toISOString()} ${at.padEnd(5)} ${prefix}${message}`);
  };
  return {
    debug: (m) => emit('debug', m),
    info: (m) => emit('info', m),
    warn: (m) => emit('warn', m),
    error: (m) => emit('error', m),
    child: (p) => createLogger({ level, write, prefix: `${prefix}${p} ` }),
  };
}

/** For tests and library use: drops everything. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
