import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { mustRun, runTool, TOOL_ENV, type ToolResult } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { useCleanups } from '../helpers/cleanups.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const cleanup = useCleanups();

const copy = (args: string[]): Promise<ToolResult> => runTool(process.execPath, [CLI, 'copy', ...args], { timeoutMs: 60_000 });

/** qemu-nbd as a stand-in destination server on a unix socket. */
async function qemuNbd(file: string, socket: string, exportName: string, readOnly = false): Promise<string> {
  const child: ChildProcess = spawn('qemu-nbd', ['-f', 'raw', '-x', exportName, '-k', socket, '--persistent', ...(readOnly ? ['-r'] : []), file], { env: TOOL_ENV, stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  cleanup(() => {
    child.kill('SIGTERM');
    return exited;
  });
  for (let tries = 0; !existsSync(socket) && tries < 200; tries++) await new Promise((r) => setTimeout(r, 25));
  if (!existsSync(socket)) throw new Error(`qemu-nbd did not create ${socket}`);
  return `nbd+unix:///${exportName}?socket=${socket}`;
}

/** `nbd-remapper serve` on an image; its export is `source`. */
async function remapperSource(file: string, socket: string): Promise<string> {
  const server: ServerProcess = await startServerProcess(['serve', '--disk', file, '--socket', socket]);
  cleanup(async () => expect(await server.stop()).toBe(0));
  return server.uri('source', 'unix');
}

function setup(): { file(name: string): string } {
  const dir = scratchDir('nbd-remapper-copy-');
  cleanup(() => dir.cleanup());
  return dir;
}

it('copies a whole disk byte for byte; all-zero regions arrive as zeroes, sent as WRITE_ZEROES', async () => {
  const dir = setup();
  const source = randomBytes(8 * MiB);
  source.fill(0, 3 * MiB, 5 * MiB);
  source.fill(0, 8 * MiB - 4 * KiB);
  writeFileSync(dir.file('src.img'), source);
  // The destination starts full of other bytes, so zeroes must really arrive.
  writeFileSync(dir.file('dst.img'), randomBytes(8 * MiB));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');

  const result = await copy(['--from', from, '--to', to, '--progress']);
  expect(result.stderr).not.toMatch(/error/);
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^copied 8\.0 MiB \(8388608 bytes; 6\.0 MiB as data, 2\.0 MiB as zeroes\) in [\d.]+ s, [\d.]+ MB\/s; destination flushed$/m);
  expect(result.stderr).toContain(`copying 8.0 MiB in 1 move from ${from} to ${to}`);
  await mustRun('cmp', [dir.file('src.img'), dir.file('dst.img')]);
});

it('says when the request size splits blocks the destination prefers whole, and still copies right', async () => {
  const dir = setup();
  writeFileSync(dir.file('src.img'), randomBytes(MiB));
  writeFileSync(dir.file('dst.img'), randomBytes(MiB));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');

  const odd = await copy(['--from', from, '--to', to, '--request-size', '6000']);
  expect(odd.code).toBe(0);
  // qemu-nbd advertises a preferred block size of 4096 (NBD_INFO_BLOCK_SIZE). Only the writing end is named: partial reads cost little.
  expect(odd.stderr).toContain(`requests of 6000 bytes are not a multiple of the preferred block size 4096 of ${to}`);
  expect(odd.stderr).not.toContain(`preferred block size 4096 of ${from}`);
  expect(odd.stderr).toMatch(/read-modify-write/);
  await mustRun('cmp', [dir.file('src.img'), dir.file('dst.img')]);

  const whole = await copy(['--from', from, '--to', to, '--request-size', '64K']);
  expect(whole.code).toBe(0);
  expect(whole.stderr).not.toMatch(/preferred block size/);
});

it('runs a plan of two moves and leaves the rest of the destination alone', async () => {
  const dir = setup();
  const source = randomBytes(4 * MiB);
  const before = randomBytes(4 * MiB);
  writeFileSync(dir.file('src.img'), source);
  writeFileSync(dir.file('dst.img'), before);
  const moves = [
    { from: 1 * MiB, to: 3 * MiB, length: 512 * KiB },
    { from: 0, to: 1 * MiB + 4096, length: 64 * KiB + 100 },
  ];
  writeFileSync(dir.file('plan.json'), JSON.stringify({ moves }));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');

  const result = await copy(['--from', from, '--to', to, '--plan', dir.file('plan.json'), '--request-size', '64K', '--requests', '4']);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  expect(result.stdout).toContain(`(${512 * KiB + 64 * KiB + 100} bytes;`);

  const expected = Buffer.from(before);
  for (const m of moves) source.copy(expected, m.to, m.from, m.from + m.length);
  const after = readFileSync(dir.file('dst.img'));
  expect(after.length).toBe(expected.length);
  expect(after.findIndex((byte, i) => byte !== expected[i])).toBe(-1);
});

it('runs the 5-block permutation of DESIGN §3 one block at a time', async () => {
  const dir = setup();
  const B = 4096;
  const blocks = [0, 1, 2, 3, 4].map(() => randomBytes(B));
  writeFileSync(dir.file('src.img'), Buffer.concat(blocks));
  writeFileSync(dir.file('dst.img'), Buffer.alloc(5 * B));
  // Blocks numbered from 1 as in the design: 1→4, 2→3, 3→1, 4→5, 5→2, in source order.
  const target = [4, 3, 1, 5, 2];
  writeFileSync(dir.file('five.json'), JSON.stringify({ moves: target.map((to, i) => ({ from: i * B, to: (to - 1) * B, length: B })) }));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');

  const result = await copy(['--from', from, '--to', to, '--plan', dir.file('five.json'), '--request-size', '4096', '--requests', '1']);
  expect(result.code).toBe(0);
  const after = readFileSync(dir.file('dst.img'));
  target.forEach((to, i) => expect(after.subarray((to - 1) * B, to * B).equals(blocks[i])).toBe(true));
});

it('copies what fits when the exports differ in size, and says so', async () => {
  const dir = setup();
  const source = randomBytes(1 * MiB);
  writeFileSync(dir.file('src.img'), source);
  writeFileSync(dir.file('dst.img'), Buffer.alloc(768 * KiB));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');

  const result = await copy(['--from', from, '--to', to]);
  expect(result.code).toBe(0);
  expect(result.stderr).toMatch(/the source \(1048576 bytes\) is larger than the destination \(786432 bytes\): copying only its first 786432 bytes/);
  expect(readFileSync(dir.file('dst.img')).equals(source.subarray(0, 768 * KiB))).toBe(true);
});

it('fails clearly: bad URI, bad plans, unreachable server, unknown export, read-only destination', async () => {
  const dir = setup();
  writeFileSync(dir.file('src.img'), randomBytes(1 * MiB));
  writeFileSync(dir.file('dst.img'), Buffer.alloc(1 * MiB));
  const from = await remapperSource(dir.file('src.img'), dir.file('src.sock'));
  const to = await qemuNbd(dir.file('dst.img'), dir.file('dst.sock'), 'destination');
  const readOnlyTo = await qemuNbd(dir.file('dst.img'), dir.file('ro.sock'), 'destination', true);
  const expectFailure = (result: ToolResult, code: number, ...messages: RegExp[]): void => {
    expect(result.code).toBe(code);
    for (const m of messages) expect(result.stderr).toMatch(m);
    expect(result.stderr).toMatch(/\n {2}fix: /);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(result.stdout).toBe('');
  };

  expectFailure(await copy(['--from', 'nbd:/source', '--to', to]), 2, /'nbd:\/source' is not an NBD URI/);
  expectFailure(await copy(['--from', from, '--to', 'nbd+unix:///destination']), 2, /needs \?socket=PATH/);

  writeFileSync(dir.file('past-end.json'), JSON.stringify({ moves: [{ from: 0, to: 0, length: 4096 }, { from: 1 * MiB - 4096, to: 8192, length: 8192 }] }));
  expectFailure(
    await copy(['--from', from, '--to', to, '--plan', dir.file('past-end.json')]),
    2,
    /move 2 \(from 1044480, to 8192, length 8192\) reads past the end of the source: it ends at byte 1052672/,
  );
  writeFileSync(dir.file('overlap.json'), JSON.stringify({ moves: [{ from: 0, to: 0, length: 8192 }, { from: 65536, to: 4096, length: 4096 }] }));
  expectFailure(await copy(['--from', from, '--to', to, '--plan', dir.file('overlap.json')]), 2, /move 1 .* and move 2 .* write overlapping destination ranges/);
  expectFailure(await copy(['--from', from, '--to', to, '--plan', dir.file('missing.json')]), 2, /plan file .*missing\.json does not exist/);
  // Moves that write over what they read within one export, named through a symlink to its socket: still the same
  // export (nbdkit takes both connections at once; qemu-nbd serves one client at a time).
  const memory = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-U', dir.file('mem.sock'), 'memory', '1M'], { env: TOOL_ENV, stdio: 'ignore' });
  cleanup(() => void memory.kill());
  for (let tries = 0; !existsSync(dir.file('mem.sock')) && tries < 200; tries++) await new Promise((r) => setTimeout(r, 25));
  symlinkSync(dir.file('mem.sock'), dir.file('mem-link.sock'));
  writeFileSync(dir.file('in-place.json'), JSON.stringify({ moves: [{ from: 0, to: 65536, length: 262144 }] }));
  expectFailure(
    await copy(['--from', `nbd+unix:///?socket=${dir.file('mem.sock')}`, '--to', `nbd+unix:///?socket=${dir.file('mem-link.sock')}`, '--plan', dir.file('in-place.json')]),
    2,
    /--from and --to are the same export .* writes over bytes that it reads itself/,
  );

  const nowhere = `nbd+unix:///destination?socket=${dir.file('nobody.sock')}`;
  expectFailure(await copy(['--from', from, '--to', nowhere]), 1, new RegExp(`no NBD server at ${nowhere.replace(/[.?+]/g, '\\$&')}`), /fix: start the server \(`nbd-remapper serve/);
  expectFailure(await copy(['--from', from.replace('/source?', '/sauce?'), '--to', to]), 1, /export 'sauce' does not exist/, /fix: put one of the exports it offers in the URI: 'source'/);
  expectFailure(await copy(['--from', from, '--to', readOnlyTo]), 1, /is read-only/, /nbd-remapper seal/);
  expectFailure(await copy(['--from', from, '--to', to, '--request-size', 'lots']), 2, /--request-size 'lots' is not a size/);
  expectFailure(await copy(['--from', from, '--to', to, '--requests', '0']), 2, /--requests 0 must be a whole number from 1 to 256/);
  // Nothing was written by any of the failed runs.
  expect(readFileSync(dir.file('dst.img')).equals(Buffer.alloc(1 * MiB))).toBe(true);
});
