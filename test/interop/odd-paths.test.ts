import { mkdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * Paths with a space, a `&` and a quote in them: what serve prints must work
 * when pasted — the URIs in real clients (percent-encoded), the commands in
 * a shell (quoted). Before, the URI was cut at the space or the `&` and the
 * attach command split the socket path into several arguments.
 */
const cleanup = useCleanups();

it('prints URIs and commands that work for a socket, a control socket and a disk in an odd directory', async () => {
  const dir = scratchDir('nbd-remapper-odd-');
  cleanup(() => dir.cleanup());
  const odd = join(dir.path, "my dir & 'q'");
  mkdirSync(odd);
  const disk = join(odd, 'disk #1.img');
  writeFileSync(disk, '');
  truncateSync(disk, 16 * 1024 * 1024);
  const control = join(odd, 'control sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', join(odd, 'nbd&.sock'), '--control', control]);
  cleanup(() => server.stop('SIGKILL'));

  const source = server.uri('source');
  const destination = server.uri('destination');
  expect(source).not.toMatch(/[ &]/); // a quote is a legal URI character
  expect((await mustRun('nbdinfo', ['--size', source])).trim()).toBe(String(16 * 1024 * 1024));
  expect(await mustRun('qemu-img', ['info', '--output=json', destination])).toContain('"virtual-size": 16777216');

  // The attach command, read by a shell: -u gets the socket path whole.
  const attach = /attach: (nbd-client -N source .*)$/m.exec(server.stdout())![1];
  const words = (await mustRun('/bin/sh', ['-c', `set -- ${attach}; printf '%s\\n' "$@"`])).split('\n').slice(0, -1);
  expect(words).toEqual(['nbd-client', '-N', 'source', '-u', join(odd, 'nbd&.sock'), '/dev/nbd0', '-t', '60']);

  // The control command, pasted into a shell as printed (with this build for `nbd-remapper`).
  const printed = /\(nbd-remapper status\|seal\|checkpoint\|finish (--control .*)\)$/m.exec(server.stdout())![1];
  await mustRun('/bin/sh', ['-c', `"$0" "$1" seal ${printed}`, process.execPath, CLI]);
  await mustRun(process.execPath, [CLI, 'copy', '--from', source, '--to', destination]);
  await mustRun('nbdcopy', [source, 'null:']);
  expect(await mustRun('/bin/sh', ['-c', `"$0" "$1" status ${printed}`, process.execPath, CLI])).toMatch(/^phase:\s+sealed$/m);
  expect(await server.stop()).toBe(0);
}, 60_000);
