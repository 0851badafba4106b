import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { runTool, type ToolResult } from '../helpers/run-tool.js';
import { randomImage, scratchDir, scratchDisk } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { useCleanups } from '../helpers/cleanups.js';

/** The state file through the CLI: a clean restart resumes, a wrong disk or map is refused, finish runs offline. */

const MiB = 1024 * 1024;
const cleanup = useCleanups();

const cli = (args: string[]): Promise<ToolResult> => runTool(process.execPath, [CLI, ...args], { timeoutMs: 120_000 });

it('resumes after a stop and after kill -9; refuses a state of another map or disk, or one in use; finishes offline', async () => {
  const dir = scratchDir('nbd-remapper-resume-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  // A partition moved forward: the old one at 1 MiB, the new one at 2 MiB (the first MiB is the disk's kept edge).
  const original = randomImage(disk, 9 * MiB);
  const mapFile = dir.file('map.json');
  const extents = [{ destOffset: 0, length: 7 * MiB, diskOffset: 2 * MiB }];
  writeFileSync(mapFile, JSON.stringify({ extents }));
  const control = dir.file('control.sock');
  const serveArgs = ['serve', '--disk', disk, '--map', mapFile, '--socket', dir.file('nbd.sock'), '--control', control, '--cache', '64K'];
  const start = async (args = serveArgs): Promise<ServerProcess> => {
    const server = await startServerProcess(args);
    cleanup(() => server.stop('SIGKILL'));
    return server;
  };

  let server = await start();
  expect(server.stdout()).toMatch(/state: .*disk\.img\.remap-state \(new migration\)/);
  expect((await cli(['seal', '--control', control])).code).toBe(0);
  // Half the copy, then a clean stop: held data goes into the state.
  await nbdshScript(
    server.uri('destination'),
    `src = nbd.NBD(); src.connect_uri(${JSON.stringify(server.uri('source'))})
for off in range(0, ${3 * MiB}, 65536):
    h.pwrite(src.pread(65536, ${MiB} + off), off)`,
  );
  expect(await server.stop()).toBe(0);

  server = await start();
  expect(server.stdout()).toMatch(/\(resumed\)/);
  expect(server.stderr() + server.stdout()).toMatch(/resumed the migration .*phase sealed/);
  // Sealed already: the caches take their memory in the background, beside what the state restored into RAM —
  // here 16 blocks, the whole 64K cache, so none of it.
  for (let i = 0; i < 100 && !/of RAM for the cache and 64 MiB for the revisit cache taken/.test(server.stderr()); i++) await setTimeout(50);
  expect(server.stderr()).toMatch(/16 in RAM from the state/);
  expect(server.stderr()).toMatch(/ 0 B of RAM for the cache and 64 MiB for the revisit cache taken/);
  // The rest of the copy, a FLUSH, then kill -9.
  await nbdshScript(
    server.uri('destination'),
    `src = nbd.NBD(); src.connect_uri(${JSON.stringify(server.uri('source'))})
for off in range(${3 * MiB}, ${7 * MiB}, 65536):
    h.pwrite(src.pread(65536, ${MiB} + off), off)
h.flush()`,
  );
  server.child.kill('SIGKILL');
  await server.exited;

  // A different map over the same state is refused, naming what differs.
  const otherMap = dir.file('other-map.json');
  writeFileSync(otherMap, JSON.stringify({ extents: [{ destOffset: 0, length: 6 * MiB, diskOffset: 3 * MiB }] }));
  const wrongMap = await cli(['serve', '--disk', disk, '--map', otherMap, '--socket', dir.file('x.sock'), '--control', dir.file('x-control.sock')]);
  expect(wrongMap.code).not.toBe(0);
  expect(wrongMap.stderr).toMatch(/map[\s\S]*fix: /);
  // Another disk with this state is refused too.
  const otherDisk = dir.file('other.img');
  randomImage(otherDisk, 10 * MiB);
  const wrongDisk = await cli(['serve', '--disk', otherDisk, '--state', `${disk}.remap-state`, '--socket', dir.file('y.sock'), '--control', dir.file('y-control.sock')]);
  expect(wrongDisk.code).not.toBe(0);
  expect(wrongDisk.stderr).toMatch(/does not belong[\s\S]*a disk of 9437184 bytes/);
  expect(wrongDisk.stderr).toMatch(/fix: /);

  // Offline finish is refused while a server holds the disk, then done without one.
  server = await start(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control]);
  const locked = await cli(['finish', '--disk', disk]);
  expect(locked.code).not.toBe(0);
  expect(locked.stderr).toMatch(/in use|locked/);
  // A clone of the disk (same content, so the sealed samples match) with the same state is refused too:
  // the disk's lock cannot see it, the state's lock does.
  const clone = dir.file('clone.img');
  copyFileSync(disk, clone);
  const shared = await cli(['serve', '--disk', clone, '--state', `${disk}.remap-state`, '--socket', dir.file('z.sock'), '--control', dir.file('z-control.sock')]);
  expect(shared.code).not.toBe(0);
  expect(shared.stderr).toMatch(/state file .*disk\.img\.remap-state is in use by another nbd-remapper[\s\S]*fix: /);
  const sharedFinish = await cli(['finish', '--disk', clone, '--state', `${disk}.remap-state`]);
  expect(sharedFinish.code).not.toBe(0);
  expect(sharedFinish.stderr).toMatch(/is in use by another nbd-remapper/);
  expect(await server.stop()).toBe(0);
  const offline = await cli(['finish', '--disk', disk]);
  expect(offline.code, offline.stderr).toBe(0);
  expect(offline.stdout).toMatch(/finished offline/);
  // An offline finish fills neither cache, so it takes no memory for them.
  expect(offline.stdout + offline.stderr).not.toMatch(/for the revisit cache taken/);
  const image = readFileSync(disk);
  expect(image.subarray(2 * MiB).equals(original.subarray(MiB, 8 * MiB))).toBe(true);

  // Serving a finished migration: destination only, a plain view of the disk.
  server = await start(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control]);
  const listed = await runTool('nbdinfo', ['--list', '--json', server.uri('destination')]);
  expect((JSON.parse(listed.stdout) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name'])).toEqual(['destination']);
  expect(await server.stop()).toBe(0);
});

it('resumes a migration with the block size it started with when --block-size is left out; a map without it is refused, naming --block-size', async () => {
  const { dir, control, serveArgs: common } = scratchDisk('nbd-remapper-resume-bs-', 4 * MiB, cleanup);
  const mapFile = dir.file('map.json');
  writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: 2 * MiB, diskOffset: 2 * MiB }] }));
  let server = await startServerProcess([...common, '--map', mapFile, '--block-size', '512']);
  cleanup(() => server.stop('SIGKILL'));
  expect((await cli(['seal', '--control', control])).code).toBe(0);
  expect(await server.stop()).toBe(0);

  server = await startServerProcess(common);
  expect(server.stdout()).toMatch(/\(resumed\)/);
  expect(server.stdout() + server.stderr()).toMatch(/block size 512\b/);
  expect(await server.stop()).toBe(0);

  const withMap = await cli([...common, '--map', mapFile]);
  expect(withMap.code).not.toBe(0);
  expect(withMap.stderr).toMatch(/its block size is 512, this run asks for 4096[\s\S]*fix: pass --block-size 512/);
});
