/**
 * An argument as a POSIX shell reads it back: bare when every character is
 * safe, else in single quotes (a quote inside becomes '\''). For commands
 * printed for a person to paste: a path with a space or a `&` in it must not
 * turn into two arguments or a background job.
 */
export function shellQuote(arg: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}
