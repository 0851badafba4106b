/** An error's message, whatever was thrown. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The fix an error carries for a person (StateError, DiskError, ControlRefusal …), if it has one. */
export function fixOf(err: unknown): string | undefined {
  const fix = err instanceof Error ? (err as { fix?: unknown }).fix : undefined;
  return typeof fix === 'string' ? fix : undefined;
}

/** An error's message for a log line, with its fix when it carries one. */
export function describeFailure(err: unknown): string {
  const fix = fixOf(err);
  return fix === undefined ? messageOf(err) : `${messageOf(err)}; fix: ${fix}`;
}
