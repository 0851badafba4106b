/**
 * An error the user can act on: printed as the cause and the fix, without a
 * stack trace, and the process exits non-zero. Errors from other layers that
 * carry a `fix` (DiskError, ListenError) are shown the same way.
 */
export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly fix: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

interface Fixable {
  message: string;
  fix: string;
}

function isFixable(err: unknown): err is Fixable {
  return err instanceof Error && typeof (err as Partial<Fixable>).fix === 'string';
}

/** Prints an error for a person and returns the exit code. */
export function reportError(err: unknown, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  if (isFixable(err)) {
    write(`nbd-remapper: error: ${err.message}\n  fix: ${err.fix}\n`);
    return err instanceof UserError ? err.exitCode : 1;
  }
  const message = err instanceof Error ? err.message : String(err);
  write(`nbd-remapper: unexpected error: ${message}\n`);
  if (process.env.NBD_REMAPPER_DEBUG && err instanceof Error && err.stack) write(`${err.stack}\n`);
  else write('  (this is a bug; run again with NBD_REMAPPER_DEBUG=1 for a stack trace and report it)\n');
  return 70;
}
