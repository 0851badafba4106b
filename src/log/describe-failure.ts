/** An error's message for a log line, with its fix when it carries one (StateError, DiskError). */
export function describeFailure(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const fix = (err as { fix?: unknown }).fix;
  return typeof fix === 'string' ? `${err.message}; fix: ${fix}` : err.message;
}
