import yargs, { type Argv, type CommandModule } from 'yargs';
import { describe, expect, it } from 'vitest';
import { checkpointCommand, finishCommand, sealCommand, statusCommand } from '../../../src/cli/commands/control-commands.js';
import { copyCommand } from '../../../src/cli/commands/copy.js';
import { demoCommand } from '../../../src/cli/commands/demo.js';
import { serveCommand } from '../../../src/cli/commands/serve.js';
import { verifyCommand } from '../../../src/cli/commands/verify.js';

/** The part of yargs' option table this test reads (not in its type definitions). */
interface OptionTable {
  key: Record<string, unknown>;
  boolean: string[];
  narg: Record<string, unknown>;
}

const commands = { serve: serveCommand, demo: demoCommand, status: statusCommand, seal: sealCommand, checkpoint: checkpointCommand, finish: finishCommand, copy: copyCommand, verify: verifyCommand };

function optionTable(command: CommandModule<object, never>): OptionTable {
  const builder = command.builder as (y: Argv) => Argv;
  return (builder(yargs([])) as unknown as { getOptions(): OptionTable }).getOptions();
}

describe('every option that takes a value requires one', () => {
  // Without requiresArg, `--cache` at the end of a line parses as '' and the default is used silently,
  // and `--revisit-cache --safe` takes nothing; a new option must not bring that back.
  for (const [name, command] of Object.entries(commands)) {
    it(name, () => {
      const table = optionTable(command as CommandModule<object, never>);
      const valued = Object.keys(table.key).filter((key) => !table.boolean.includes(key));
      expect(valued.length).toBeGreaterThan(0);
      expect(valued.filter((key) => !(key in table.narg))).toEqual([]);
    });
  }
});
