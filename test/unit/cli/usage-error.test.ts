import { describe, expect, it } from 'vitest';
import { usageErrorText } from '../../../src/cli/usage-error.js';

const COMMANDS = ['serve', 'seal', 'copy'];

describe('usageErrorText', () => {
  it('within a command: the error under the command name and where its options are, without the help text', () => {
    let helpAsked = false;
    const text = usageErrorText(['serve', '--disk'], COMMANDS, 'Not enough arguments following: disk', () => {
      helpAsked = true;
      return 'HELP';
    });
    expect(helpAsked).toBe(false);
    expect(text).toBe('nbd-remapper serve: Not enough arguments following: disk\n  fix: `nbd-remapper serve --help` lists its options, with examples\n');
  });

  it('finds the command after options and their values', () => {
    expect(usageErrorText(['--cache', '1M', 'copy', '--to'], COMMANDS, 'm', () => 'HELP')).toMatch(/^nbd-remapper copy: m\n/);
  });

  it('without a command (none, or an unknown one): the help with its list of commands first, then the error', () => {
    expect(usageErrorText([], COMMANDS, 'name a command', () => 'HELP')).toBe('HELP\n\nnbd-remapper: name a command\n');
    expect(usageErrorText(['sael'], COMMANDS, 'Did you mean seal?', () => 'HELP')).toBe('HELP\n\nnbd-remapper: unknown command sael: Did you mean seal?\n');
    expect(usageErrorText(['bogus'], COMMANDS, 'Unknown argument: bogus', () => 'HELP')).toBe('HELP\n\nnbd-remapper: Unknown argument: bogus\n');
    // An option's value is not taken for a command.
    expect(usageErrorText(['--cache', '1M'], COMMANDS, 'name a command', () => 'HELP')).toBe('HELP\n\nnbd-remapper: name a command\n');
  });
});
