/**
 * How a usage error reads. Within a command (an option missing its value, an
 * unknown option) it is the error and where to look — the command's whole
 * `--help` would push the one line that matters off the screen. Without a
 * command, the list of commands is what the person needs, so it comes first.
 */
export function usageErrorText(args: readonly string[], commands: readonly string[], message: string, help: () => string): string {
  const command = args.find((a) => commands.includes(a));
  if (command === undefined) return `${help()}\n\nnbd-remapper: ${message}\n`;
  return `nbd-remapper ${command}: ${message}\n  fix: \`nbd-remapper ${command} --help\` lists its options, with examples\n`;
}
