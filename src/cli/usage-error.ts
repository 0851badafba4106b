/**
 * How a usage error reads. Within a command (an option missing its value, an
 * unknown option) it is the error and where to look — the command's whole
 * `--help` would push the one line that matters off the screen. Without a
 * command, the list of commands is what the person needs, so it comes first.
 */
export function usageErrorText(args: readonly string[], commands: readonly string[], message: string, help: () => string): string {
  const command = args.find((a) => commands.includes(a));
  if (command === undefined) {
    // yargs' suggestion for a mistyped command ("Did you mean seal?") does not say what it was given.
    const word = args.find((a) => !a.startsWith('-'));
    const said = word !== undefined && message.startsWith('Did you mean') ? `unknown command ${word}: ${message}` : message;
    return `${help()}\n\nnbd-remapper: ${said}\n`;
  }
  return `nbd-remapper ${command}: ${message}\n  fix: \`nbd-remapper ${command} --help\` lists its options, with examples\n`;
}
