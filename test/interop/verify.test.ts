import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun, runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

/**
 * `nbd-remapper verify`: a record of what destination serves before finish,
 * compared with what it serves after (a plain view of the disk then) — G6 as
 * a person checks it. A disk changed behind the server's back is caught and
 * the differing bytes named.
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

it('records destination before finish, finds the disk identical after it, and names the bytes a tampered disk changed', async () => {
  const dir = scratchDir('nbd-remapper-verify-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  randomImage(disk, 8 * MiB);
  // The halves swap places, with a cache far smaller than what is held: data spills and moves at finish.
  const map = dir.file('map.json');
  writeFileSync(map, JSON.stringify({ extents: [{ destOffset: 0, length: 4 * MiB, diskOffset: 4 * MiB }, { destOffset: 4 * MiB, length: 4 * MiB, diskOffset: 0 }] }));
  const control = dir.file('control.sock');
  const args = ['serve', '--disk', disk, '--map', map, '--socket', dir.file('nbd.sock'), '--control', control, '--cache', '1M'];
  let server = await startServerProcess(args);
  cleanup(() => server.stop('SIGKILL'));
  await mustRun(process.execPath, [CLI, 'seal', '--control', control]);
  await mustRun(process.execPath, [CLI, 'copy', '--from', server.uri('source'), '--to', server.uri('destination'), '--control', control], { timeoutMs: 60_000 });

  const record = dir.file('before-finish.sha256');
  const recorded = await mustRun(process.execPath, [CLI, 'verify', '--export', server.uri('destination'), '--record', record, '--chunk-size', '64K']);
  expect(recorded).toMatch(/^recorded 8\.0 MiB \(8388608 bytes, 128 chunk\(s\)\) of .* in /);
  expect(readFileSync(record, 'utf8').split('\n')[0]).toBe('{"format":"nbd-remapper-verify/1","size":8388608,"chunkBytes":65536,"algorithm":"sha256"}');

  await mustRun(process.execPath, [CLI, 'finish', '--control', control], { timeoutMs: 60_000 });
  expect(await mustRun(process.execPath, [CLI, 'verify', '--export', server.uri('destination'), '--against', record])).toMatch(/^identical: .* 8\.0 MiB/);
  expect(await server.stop()).toBe(0);

  // One byte changed behind the server's back: destination byte 5 MiB + 100 lives at disk byte 1 MiB + 100.
  const fd = openSync(disk, 'r+');
  const byte = Buffer.alloc(1);
  const at = MiB + 100;
  byte[0] = readFileSync(disk)[at] ^ 0xff;
  writeSync(fd, byte, 0, 1, at);
  closeSync(fd);
  server = await startServerProcess(args);
  const differs = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('destination'), '--against', record]);
  expect(differs.code).toBe(1);
  expect(differs.stderr).toMatch(/differs from the record in 64 KiB of 8\.0 MiB[\s\S]*bytes 5242880…5308415 \(64 KiB\)/);
  expect(await server.stop()).toBe(0);
}, 120_000);

it('refuses what it cannot compare, naming the fix', async () => {
  const dir = scratchDir('nbd-remapper-verify-refused-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  randomImage(disk, MiB);
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--read-only']);
  cleanup(() => server.stop('SIGKILL'));
  const neither = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source')]);
  expect(neither.code).toBe(2);
  expect(neither.stderr).toMatch(/exactly one of --record FILE and --against FILE/);
  const other = dir.file('other.sha256');
  writeFileSync(other, `${JSON.stringify({ format: 'nbd-remapper-verify/1', size: 4096, chunkBytes: 4096, algorithm: 'sha256' })}\n${'0'.repeat(64)}\n`);
  const wrongSize = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source'), '--against', other]);
  expect(wrongSize.code).toBe(1);
  expect(wrongSize.stderr).toMatch(/has 1048576 bytes, the record .* was made of 4096/);
  const notARecord = dir.file('not-a-record');
  writeFileSync(notARecord, 'hello\n');
  const broken = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source'), '--against', notARecord]);
  expect(broken.code).toBe(1);
  expect(broken.stderr).toMatch(/is not a verify record: its first line is not JSON[\s\S]*verify --record/);

  // Record files that cannot be read or written: a user error at once — before any of the export is read.
  const missing = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source'), '--against', dir.file('no-such.sha256')]);
  expect([missing.code, missing.stderr]).toEqual([1, expect.stringMatching(/cannot read the record .*no-such\.sha256: there is no such file[\s\S]*fix: pass the file that `verify --record` wrote/)]);
  const noDirectory = await runTool(process.execPath, [CLI, 'verify', '--export', 'nbd+unix:///destination?socket=/nonexistent.sock', '--record', dir.file('nodir/x.sha256')]);
  expect([noDirectory.code, noDirectory.stderr]).toEqual([1, expect.stringMatching(/cannot write the record .*nodir\/x\.sha256: the directory .*nodir does not exist[\s\S]*fix: create it/)]);
  const directory = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source'), '--record', dir.path]);
  expect([directory.code, directory.stderr]).toEqual([1, expect.stringMatching(/cannot write the record .*: it is a directory[\s\S]*fix: name a file/)]);
  // A chunk size the export cannot serve in one request: said before anything is read.
  const tooBig = await runTool(process.execPath, [CLI, 'verify', '--export', server.uri('source'), '--record', dir.file('big.sha256'), '--chunk-size', '64M']);
  expect([tooBig.code, tooBig.stderr]).toEqual([1, expect.stringMatching(/cannot be read in chunks of 64 MiB: more than the 32 MiB it takes in one request[\s\S]*fix: give a --chunk-size of at most 33554432 bytes/)]);
  expect(existsSync(dir.file('big.sha256'))).toBe(false);
  for (const r of [missing, noDirectory, directory, tooBig]) expect(r.stderr).not.toMatch(/this is a bug/);
  expect(await server.stop()).toBe(0);
}, 60_000);

it('a server that fails reads (EIO) makes verify fail with the cause and a fix, not an internal error, and leaves no record', async () => {
  const dir = scratchDir('nbd-remapper-verify-eio-');
  cleanup(() => dir.cleanup());
  const socket = dir.file('nbdkit.sock');
  const nbdkit = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', socket, '--filter=error', 'memory', '1M', 'error-pread-rate=1', 'error=EIO'], { stdio: 'ignore' });
  cleanup(() => void nbdkit.kill());
  for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const record = dir.file('eio.sha256');
  const failed = await runTool(process.execPath, [CLI, 'verify', '--export', `nbd+unix:///?socket=${socket}`, '--record', record]);
  expect([failed.code, failed.stderr]).toEqual([1, expect.stringMatching(/reading nbd\+unix:.* failed: [\s\S]*EIO[\s\S]*fix: the server could not read its disk there/)]);
  expect(failed.stderr).not.toMatch(/this is a bug/);
  expect(existsSync(record)).toBe(false);
}, 60_000);
