import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { runTool, type ToolResult } from '../helpers/run-tool.js';
import { randomImage, scratchDisk } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * A migration whose state is not where `serve` looks (a forgotten or
 * mistyped --state) is not silently followed by a second one over the same,
 * partly moved, disk: `serve` names the unfinished one and how to go on.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();
const cli = (args: string[]): Promise<ToolResult> => runTool(process.execPath, [CLI, ...args], { timeoutMs: 60_000 });

it('the test run has a migration registry of its own', () => {
  const registry = process.env.NBD_REMAPPER_REGISTRY;
  expect(registry).toMatch(/nbd-remapper-test-registry-/);
});

it('refuses a new migration over a disk with an unfinished one elsewhere, names its state; after finish a new one may start', async () => {
  const { dir, control, serveArgs: common } = scratchDisk('nbd-remapper-unfinished-', 4 * MiB, cleanup);
  const custom = dir.file('custom.state');

  let server = await startServerProcess([...common, '--state', custom]);
  cleanup(() => server.stop('SIGKILL'));
  expect((await cli(['seal', '--control', control])).code).toBe(0);
  expect(await server.stop()).toBe(0);

  // --state forgotten: the default path would start a new migration.
  const forgotten = await cli(common);
  expect(forgotten.code).not.toBe(0);
  expect(forgotten.stderr).toMatch(/has an unfinished migration \(state .*custom\.state, phase sealed, started [^)]+\)[\s\S]*fix: to go on with it, pass --state .*custom\.state/);
  // A mistyped one likewise; and neither left a state file behind.
  const mistyped = await cli([...common, '--state', dir.file('custon.state')]);
  expect(mistyped.stderr).toMatch(/has an unfinished migration \(state .*custom\.state/);
  expect(readdirSync(dir.path).filter((n) => /remap-state$|custon/.test(n))).toEqual([]);
  // --read-only serves it all the same, with a warning.
  const readOnly = await startServerProcess([...common, '--read-only']);
  expect(readOnly.stderr()).toMatch(/this disk has an unfinished migration \(state .*custom\.state, phase sealed/);
  expect(await readOnly.stop()).toBe(0);

  // The right --state resumes; once finished, a new migration may begin with the default state.
  server = await startServerProcess([...common, '--state', custom]);
  expect(server.stdout()).toMatch(/\(resumed\)/);
  expect((await cli(['finish', '--control', control])).code).toBe(0);
  expect(await server.stop()).toBe(0);
  server = await startServerProcess(common);
  expect(server.stdout()).toMatch(/new migration/);
  expect(await server.stop()).toBe(0);
});

it('a state at the default path of an image counts too, though no registry lists it (a state of an older version)', async () => {
  const { dir, serveArgs: common } = scratchDisk('nbd-remapper-unfinished-default-', 4 * MiB, cleanup);
  const noRegistry = `NBD_REMAPPER_REGISTRY=${dir.file('no-registry')}`;
  const server = await startServerProcess(common, 20_000, ['env', noRegistry]);
  cleanup(() => server.stop('SIGKILL'));
  expect(await server.stop()).toBe(0);
  // Asked with a registry that never heard of it: only the default path can tell.
  const other = await runTool('env', [`NBD_REMAPPER_REGISTRY=${dir.file('empty-registry')}`, process.execPath, CLI, ...common, '--state', dir.file('other.state')], { timeoutMs: 60_000 });
  expect(other.code).not.toBe(0);
  expect(other.stderr).toMatch(/has an unfinished migration \(state .*disk\.img\.remap-state, phase unsealed\)/);
});

it('a start that fails before serving (its control socket taken) leaves no migration behind: another --state is not refused', async () => {
  const { dir, disk } = scratchDisk('nbd-remapper-failed-start-', MiB, cleanup);
  const taken = dir.file('taken.sock');
  const otherDisk = dir.file('other.img');
  randomImage(otherDisk, MiB);
  const holder = await startServerProcess(['serve', '--disk', otherDisk, '--socket', dir.file('other.sock'), '--control', taken]);
  cleanup(() => holder.stop());

  const failed = await cli(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', taken]);
  expect([failed.code, failed.stderr]).toEqual([1, expect.stringMatching(/belongs to another running server/)]);
  expect(existsSync(`${disk}.remap-state`)).toBe(false);

  const chosen = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', dir.file('control.sock'), '--state', dir.file('chosen.state')]);
  expect(chosen.stdout()).toMatch(/new migration/);
  expect(await chosen.stop()).toBe(0);
});

it('a migration listed under an inode the file system later gave a new image does not guard that image', async () => {
  const { dir, serveArgs } = scratchDisk('nbd-remapper-inode-reuse-', MiB, cleanup);
  const oldState = dir.file('old.state');
  const old = await startServerProcess([...serveArgs, '--state', oldState]);
  expect(await old.stop()).toBe(0);
  // The old image is deleted and a new one made later; the file system may give it the old inode number
  // (the bench hit this). Made deterministic here: the old migration's listing is pointed at the new image.
  await new Promise((resolve) => setTimeout(resolve, 20));
  const fresh = dir.file('fresh.img');
  randomImage(fresh, MiB);
  const { dev, ino } = statSync(fresh);
  const registry = process.env.NBD_REMAPPER_REGISTRY as string;
  const listing = readdirSync(registry)
    .map((name) => join(registry, name))
    .find((path) => readFileSync(path, 'utf8').includes(oldState)) as string;
  writeFileSync(listing, JSON.stringify({ ...JSON.parse(readFileSync(listing, 'utf8')), diskKey: `file:${dev}:${ino}` }));

  const server = await startServerProcess(['serve', '--disk', fresh, '--socket', dir.file('fresh.sock'), '--control', dir.file('fresh-control.sock')]);
  expect(server.stdout()).toMatch(/new migration/);
  expect(await server.stop()).toBe(0);
  expect(existsSync(listing)).toBe(false);
});
