import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { serveOptions, type ServeOptions } from './serve.js';

type DemoOptions = Omit<ServeOptions, 'disk'> & { disk?: string };

/** Where the demo image lives: a cache directory, never inside the repository's tracked files. */
export function defaultDemoDiskPath(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(cache, 'nbd-remapper', 'demo-disk.img');
}

export const demoCommand: CommandModule<object, DemoOptions> = {
  command: 'demo',
  describe: 'Create (first time) a sparse demo disk with a partition table and patterned data, and serve it',
  builder: (yargs) =>
    serveOptions(yargs, { demand: false, describe: `Demo image path (default ${defaultDemoDiskPath()})` }) as unknown as Argv<DemoOptions>,
  handler: async (argv) => {
    const [{ ensureDemoDisk }, { serveUntilSignalled }] = await Promise.all([import('../demo-disk.js'), import('./serve-run.js')]);
    const { path, created } = await ensureDemoDisk(argv.disk ?? defaultDemoDiskPath());
    process.stdout.write(`${created ? 'created' : 'using'} demo disk ${path}\n`);
    await serveUntilSignalled({ ...argv, disk: path });
  },
};
