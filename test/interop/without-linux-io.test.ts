import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

/**
 * The linux-io addon is built by npm ci; where it could not be (no compiler),
 * the server must still serve, as before the addon existed, and say what is
 * missing. A copy of the build whose linux-io package has no compiled addon
 * stands in for such a machine.
 */
const cleanup = useCleanups();
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function buildWithoutAddon(into: string): string {
  cpSync(join(ROOT, 'dist'), join(into, 'dist'), { recursive: true });
  const modules = join(into, 'node_modules');
  mkdirSync(modules);
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (entry === 'linux-io') continue;
    symlinkSync(join(ROOT, 'node_modules', entry), join(modules, entry));
  }
  const addon = join(modules, 'linux-io');
  mkdirSync(addon);
  cpSync(join(ROOT, 'packages/linux-io/package.json'), join(addon, 'package.json'));
  cpSync(join(ROOT, 'packages/linux-io/dist'), join(addon, 'dist'), { recursive: true });
  cpSync(join(ROOT, 'package.json'), join(into, 'package.json'));
  return join(into, 'dist/src/cli/main.js');
}

it('serves without the addon, byte-exact, and says what is missing', async () => {
  const dir = scratchDir('nbd-remapper-no-addon-');
  cleanup(() => dir.cleanup());
  const cli = buildWithoutAddon(dir.path);
  const image = dir.file('disk.img');
  const data = randomImage(image, 16 * 1024 * 1024);
  const server = await startServerProcess(['serve', '--disk', image, '--read-only', '--socket', dir.file('nbd.sock')], 20_000, [], cli);
  cleanup(() => server.stop());
  expect(server.stderr()).toMatch(/warn {2}the linux-io addon did not load \(.*linux_io\.node.*\): a read that misses the page cache holds up every client .* rebuild it with npm ci/);
  const copy = dir.file('copy.bin');
  await mustRun('nbdcopy', ['-C', '1', server.uri('source', 'unix'), copy]);
  expect(readFileSync(copy).equals(data)).toBe(true);
  expect(server.stderr()).toMatch(/replies on unix sockets leave through the kernel's default send buffer .*: the linux-io addon did not load/);
  expect(await server.stop()).toBe(0);
});
