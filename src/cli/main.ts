#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { checkpointCommand, finishCommand, sealCommand, statusCommand } from './commands/control-commands.js';
import { copyCommand } from './commands/copy.js';
import { demoCommand } from './commands/demo.js';
import { serveCommand } from './commands/serve.js';
import { verifyCommand } from './commands/verify.js';
import { usageErrorText } from './usage-error.js';
import { reportError } from './user-error.js';

const EPILOGUE = `A migration, in short: serve the disk; attach "source" and "destination" with nbd-client;
mount the old filesystems from source; fstrim them, then seal; mkfs the new layout on
destination and copy the files; finish. See README.md for the walk-through.`;

const COMMANDS = [serveCommand, statusCommand, sealCommand, checkpointCommand, finishCommand, copyCommand, verifyCommand, demoCommand];

async function main(): Promise<void> {
  const args = hideBin(process.argv);
  await yargs(args)
    .scriptName('nbd-remapper')
    .usage('$0 <command> [options]\n\nChange a disk\'s layout in place through two NBD exports.')
    .command(serveCommand)
    .command(statusCommand)
    .command(sealCommand)
    .command(checkpointCommand)
    .command(finishCommand)
    .command(copyCommand)
    .command(verifyCommand)
    .command(demoCommand)
    .demandCommand(1, 'name a command (see the list above)')
    .strict()
    // An option given twice takes its last value (as getopt tools do), rather than becoming a list no check expects.
    .parserConfiguration({ 'duplicate-arguments-array': false })
    .recommendCommands()
    .epilogue(EPILOGUE)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((message: string | undefined, err: Error | undefined, y) => {
      // yargs reports some usage errors (an option missing its value) as a YError rather than a message.
      if (err !== undefined && err.name !== 'YError') throw err;
      const names = COMMANDS.flatMap((c) => c.command ?? []);
      process.stderr.write(usageErrorText(args, names, message ?? err?.message ?? 'usage error', () => String(y.help())));
      process.exit(2);
    })
    .parseAsync();
}

main().then(
  () => process.exit(0),
  (err: unknown) => process.exit(reportError(err)),
);
