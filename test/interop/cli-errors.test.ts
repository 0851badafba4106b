import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { ramFileSystemOf } from '../../src/cli/state-location.js';
import { runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';

const cli = (args: string[]) => runTool(process.execPath, [CLI, ...args], { timeoutMs: 20_000 });

it('a second server on the same disk fails at once with the lock error', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 1024 * 1024);
  const first = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('a.sock')]);
  try {
    const second = await cli(['serve', '--disk', disk, '--socket', dir.file('b.sock')]);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/in use|locked/i);
    expect(second.stderr).toMatch(/fix:/);
    expect(second.stderr).not.toMatch(/\n\s+at /); // no stack trace
  } finally {
    expect(await first.stop()).toBe(0);
  }
  // once the first is gone the disk can be served again
  const third = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('c.sock')]);
  expect(await third.stop()).toBe(0);
  dir.cleanup();
});

it('names the cause and the fix for a missing disk, a directory, a busy port, a bad address, a missing state directory and a full one', async () => {
  const dir = scratchDir();
  const missing = await cli(['serve', '--disk', dir.file('nope.img')]);
  expect(missing.code).not.toBe(0);
  expect(missing.stderr).toMatch(/nope\.img/);
  expect(missing.stderr).toMatch(/fix:/);

  mkdirSync(dir.file('adir'));
  const directory = await cli(['serve', '--disk', dir.file('adir')]);
  expect(directory.code).not.toBe(0);
  expect(directory.stderr).toMatch(/director/i);

  const disk = dir.file('disk.img');
  randomImage(disk, 65536);
  const other = dir.file('other.img');
  randomImage(other, 65536);
  const first = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0']);
  try {
    const port = /nbd:\/\/127\.0\.0\.1:(\d+)\//.exec(first.stdout())![1];
    const busy = await cli(['serve', '--disk', other, '--listen', `127.0.0.1:${port}`]);
    expect(busy.code).not.toBe(0);
    expect(busy.stderr).toMatch(/in use/);
    expect(busy.stderr).toMatch(/--listen/);
  } finally {
    expect(await first.stop()).toBe(0);
  }

  const bad = await cli(['serve', '--disk', disk, '--listen', 'not-an-address']);
  expect(bad.code).toBe(2);
  expect(bad.stderr).toMatch(/HOST:PORT/);

  // A --state in a directory that does not exist: named, with the fix, not "this is a bug". A disk of its own:
  // `disk` has a migration now (the first server's default state), and a new one there is refused for that first.
  const fresh = dir.file('fresh.img');
  randomImage(fresh, 65536);
  const noStateDir = await cli(['serve', '--disk', fresh, '--state', dir.file('gone/disk.remap-state'), '--socket', dir.file('s.sock')]);
  expect(noStateDir.code).toBe(1);
  expect(noStateDir.stderr).toMatch(/the directory .*gone does not exist/);
  expect(noStateDir.stderr).toMatch(/fix: create it \(mkdir -p/);
  expect(noStateDir.stderr).not.toMatch(/this is a bug/);

  // A --state on a full file system: /dev/full fails every write with ENOSPC, as a full one does.
  const fullState = dir.file('full.remap-state');
  symlinkSync('/dev/full', `${fullState}.tmp`);
  const full = await cli(['serve', '--disk', fresh, '--state', fullState, '--socket', dir.file('s.sock')]);
  expect(full.code).toBe(1);
  expect(full.stderr).toMatch(/cannot create the state file .*full\.remap-state: no space left on the file system that holds it \(ENOSPC\)/);
  expect(full.stderr).toMatch(/fix: free space on the file system of .*\(df -h .*\), or pass --state with a path on another file system/);
  expect(full.stderr).not.toMatch(/this is a bug/);
  expect(existsSync(fullState)).toBe(false);
  dir.cleanup();
});

it('refuses a --state that names a file which is not a state file (leaving it as it was), or a directory', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 65536);
  const notes = dir.file('notes.txt');
  writeFileSync(notes, 'my notes\n');
  const typo = await cli(['serve', '--disk', disk, '--state', notes, '--socket', dir.file('s.sock')]);
  expect(typo.code).toBe(1);
  expect(typo.stderr).toMatch(/notes\.txt does not begin with a state header: it is not an nbd-remapper state file/);
  expect(typo.stderr).toMatch(/fix: check --state: it must name this disk's state file, or a path where none exists yet/);
  expect(typo.stderr).not.toMatch(/this is a bug/);
  expect(readFileSync(notes, 'utf8')).toBe('my notes\n');
  expect(existsSync(`${notes}.lock`)).toBe(false);

  // A directory: the state file goes inside it.
  mkdirSync(dir.file('states'));
  const directory = await cli(['serve', '--disk', disk, '--state', dir.file('states'), '--socket', dir.file('s.sock')]);
  expect(directory.code).toBe(1);
  expect(directory.stderr).toMatch(/cannot keep the state file .*states: it is a directory \(EISDIR\)/);
  expect(directory.stderr).toMatch(/fix: --state names the state file itself: pass a file path, for example .*states\/disk\.remap-state/);
  expect(directory.stderr).not.toMatch(/this is a bug/);
  dir.cleanup();
});

it('refuses a checkpoint note too long to keep before asking the server, naming the limit', async () => {
  const result = await cli(['checkpoint', '--control', '/nonexistent/control.sock', '--note', 'x'.repeat(5000)]);
  expect(result.code).toBe(2);
  expect(result.stderr).toMatch(/--note is 5000 bytes long; a checkpoint keeps at most 4096[\s\S]*fix: shorten it/);
});

it('a number option given something else is a usage error that says so, not NaN', async () => {
  for (const [args, message] of [
    [['--block-size', 'abc'], /--block-size is not a number: it must be a power of two from 512 to 65536/],
    [['--block-size', '1000'], /--block-size 1000 must be a power of two from 512 to 65536/],
    [['--stall-timeout', 'soon'], /--stall-timeout is not a number: it must be a positive number of seconds/],
    // Past what a Node timer can wait: it would fire after 1 ms and drop every client.
    [['--handshake-timeout', '3000000'], /--handshake-timeout 3000000 is longer than the 2147483 s \(24.8 days\) a timer can wait/],
    [['--stall-timeout', 'Infinity'], /--stall-timeout Infinity is longer than the 2147483 s/],
  ] as const) {
    const result = await cli(['serve', '--disk', '/nonexistent.img', ...args]);
    expect([result.code, result.stderr]).toEqual([2, expect.stringMatching(message)]);
    expect(result.stderr).not.toMatch(/NaN/);
  }
});

it('teaches with --help and refuses unknown commands', async () => {
  const help = await cli(['serve', '--help']);
  expect(help.code).toBe(0);
  for (const option of ['--disk', '--listen', '--socket', '--read-only']) expect(help.stdout).toContain(option);
  const unknown = await cli(['frobnicate']);
  expect(unknown.code).toBe(2);
});

it('names a permission problem and its fix', async () => {
  const dir = scratchDir();
  chmodSync(dir.path, 0o755);
  const disk = dir.file('private.img');
  writeFileSync(disk, Buffer.alloc(65536));
  chmodSync(disk, 0o600);
  // Root ignores file modes, so the refusal is shown by running the CLI as an unprivileged user.
  const asRoot = process.getuid?.() === 0;
  const result = asRoot
    ? await runTool('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'serve', '--disk', disk, '--socket', dir.file('s.sock')], { timeoutMs: 20_000 })
    : await (chmodSync(disk, 0), cli(['serve', '--disk', disk, '--socket', dir.file('s.sock')]));
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/permission/i);
  expect(result.stderr).toMatch(/fix:/);
  dir.cleanup();
});

it('refuses a state file on tmpfs for a disk that survives a reboot, unless the risk is accepted', async () => {
  // The disk must be on a disk-backed file system: the repo's own (the system's temporary directory may be a tmpfs).
  const onDisk = scratchDir('volatile-', fileURLToPath(new URL('../../.cache/test-scratch/', import.meta.url)));
  const inRam = scratchDir('nbd-remapper-volatile-', '/dev/shm');
  try {
    expect(ramFileSystemOf(onDisk.path), 'the repo must live on a disk-backed file system').toBeUndefined();
    expect(ramFileSystemOf(inRam.path), '/dev/shm must be a tmpfs').toBe('tmpfs');
    const disk = onDisk.file('disk.img');
    randomImage(disk, 1024 * 1024);
    const state = inRam.file('disk.remap-state');
    const refused = await cli(['serve', '--disk', disk, '--state', state, '--socket', onDisk.file('a.sock')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain(`the state file ${state} is on tmpfs, which lives in RAM`);
    expect(refused.stderr).toMatch(/fix: put --state on a local, disk-backed file system .* or accept the risk with --allow-volatile-state/);
    expect(existsSync(state), 'nothing is written to a refused state').toBe(false);

    const accepted = await startServerProcess(['serve', '--disk', disk, '--state', state, '--allow-volatile-state', '--socket', onDisk.file('b.sock')]);
    expect(accepted.stderr()).toMatch(/warn {2}the state file .* is on tmpfs.*\(accepted with --allow-volatile-state\)/);
    expect(await accepted.stop()).toBe(0);

    // A disk as volatile as its state (a test in RAM) loses both at once: nothing to warn about.
    const ramDisk = inRam.file('ram.img');
    randomImage(ramDisk, 1024 * 1024);
    const both = await startServerProcess(['serve', '--disk', ramDisk, '--socket', inRam.file('c.sock')]);
    expect(both.stderr()).not.toMatch(/tmpfs/);
    expect(await both.stop()).toBe(0);
  } finally {
    onDisk.cleanup();
    inRam.cleanup();
  }
});

it('refuses unix socket paths too long for a socket address instead of using them cut short', async () => {
  const dir = scratchDir();
  try {
    // 60 + 60 characters of directories under the scratch dir: past the 107 bytes a socket address holds.
    const deep = join(dir.path, 'x'.repeat(60), 'y'.repeat(60));
    mkdirSync(deep, { recursive: true });
    const disk = dir.file('disk.img');
    randomImage(disk, 65536);
    const longSocket = join(deep, 'nbd.sock');
    const socket = await cli(['serve', '--disk', disk, '--socket', longSocket, '--control', dir.file('c.sock')]);
    expect(socket.code).not.toBe(0);
    expect(socket.stderr).toContain(`the unix socket path ${longSocket} is ${Buffer.byteLength(longSocket)} bytes long; a socket address holds at most 107`);
    expect(socket.stderr).toMatch(/fix: choose a shorter --socket path/);
    const control = await cli(['serve', '--disk', disk, '--socket', dir.file('n.sock'), '--control', join(deep, 'control.sock')]);
    expect(control.code).not.toBe(0);
    expect(control.stderr).toMatch(/fix: choose a shorter --control path/);
    // Before, the server listened at the path cut to 107 bytes: a file named after the cut directory appeared.
    expect(readdirSync(join(dir.path, 'x'.repeat(60)))).toEqual(['y'.repeat(60)]);

    const status = await cli(['status', '--control', join(deep, 'control.sock')]);
    expect(status.code).not.toBe(0);
    expect(status.stderr).toMatch(/bytes long; a socket address holds at most 107/);
    const copy = await cli(['copy', '--from', `nbd+unix:///source?socket=${longSocket}`, '--to', `nbd+unix:///destination?socket=${longSocket}`]);
    expect(copy.code).toBe(2);
    expect(copy.stderr).toMatch(/bytes long; a socket address holds at most 107/);
  } finally {
    dir.cleanup();
  }
});

const canAttachLoop =
  process.getuid?.() === 0 && existsSync('/dev/loop-control') && spawnSync('losetup', ['--version'], { timeout: 10_000 }).status === 0;

it.runIf(canAttachLoop)('refuses to serve an image for writing while a loop device exposes it, and serves it read-only', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 4 * 1024 * 1024);
  const device = execFileSync('losetup', ['--find', '--show', disk], { encoding: 'utf8', timeout: 20_000 }).trim();
  try {
    const refused = await cli(['serve', '--disk', disk, '--socket', dir.file('a.sock')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`the image ${disk} is also attached as a loop device: ${device}.`);
    expect(refused.stderr).toContain(`fix: detach it (losetup -d ${device}), and start again`);
    expect(refused.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(dir.path).filter((f) => f.includes('remap-state')), 'nothing is written for a refused disk').toEqual([]);
    const readOnly = await startServerProcess(['serve', '--disk', disk, '--read-only', '--socket', dir.file('b.sock')]);
    expect(await readOnly.stop()).toBe(0);
  } finally {
    spawnSync('losetup', ['-d', device]);
    dir.cleanup();
  }
});

it.runIf(canAttachLoop)('says at once, in the log and in status, when a loop device is attached to the image while it is served', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 4 * 1024 * 1024);
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control]);
  let device: string | undefined;
  try {
    device = execFileSync('losetup', ['--find', '--show', disk], { encoding: 'utf8', timeout: 20_000 }).trim();
    // The watch looks every 2 s: bounded wait, 100 looks of 100 ms.
    for (let look = 0; look < 100 && !server.stderr().includes(`while serving: the image ${disk} is also attached`); look++) await new Promise((r) => setTimeout(r, 100));
    expect(server.stderr()).toContain(`error while serving: the image ${disk} is also attached as a loop device: ${device}.`);
    expect(server.stderr()).toMatch(new RegExp(`error\\s+fix: detach it \\(losetup -d ${device}\\)`));
    const status = await cli(['status', '--control', control]);
    expect(status.stdout).toContain(`WARNING:      the image ${disk} is also attached as a loop device: ${device}.`);
    execFileSync('losetup', ['-d', device]);
    device = undefined;
    for (let look = 0; look < 100 && !server.stderr().includes('no loop device other than the disk exposes'); look++) await new Promise((r) => setTimeout(r, 100));
    expect(server.stderr()).toContain(`no loop device other than the disk exposes ${disk} any more`);
    expect((await cli(['status', '--control', control])).stdout).not.toContain('WARNING');
  } finally {
    if (device !== undefined) spawnSync('losetup', ['-d', device]);
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  }
});

it('an option given without its value is refused by name, not replaced by its default or the next option', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 65536);
  // Each would have served (with the 256M default cache, or the flag taken as the value) or failed elsewhere.
  for (const [args, name] of [
    [['serve', '--disk', disk, '--socket', dir.file('a.sock'), '--cache'], 'cache'],
    [['serve', '--disk', disk, '--socket', dir.file('a.sock'), '--revisit-cache', '--safe'], 'revisit-cache'],
    [['serve', '--socket', dir.file('a.sock'), '--disk'], 'disk'],
    [['finish', '--disk'], 'disk'],
    [['copy', '--from', 'nbd+unix:///source?socket=/nonexistent', '--to'], 'to'],
  ] as const) {
    const run = await cli([...args]);
    expect(run.code, args.join(' ')).toBe(2);
    expect(run.stderr).toContain(`Not enough arguments following: ${name}`);
    expect(existsSync(`${disk}.remap-state`)).toBe(false);
  }
  dir.cleanup();
});

it('a usage error within a command is the error and where to look, not the whole --help above it', async () => {
  const missing = await cli(['copy', '--from', 'nbd+unix:///source?socket=/nonexistent', '--to']);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toBe('nbd-remapper copy: Not enough arguments following: to\n  fix: `nbd-remapper copy --help` lists its options, with examples\n');
  const unknown = await cli(['seal', '--frobnicate']);
  expect(unknown.code).toBe(2);
  expect(unknown.stderr).toMatch(/^nbd-remapper seal: Unknown argument: frobnicate\n {2}fix: `nbd-remapper seal --help`/);
  // Without a command the list of commands is the help that matters: it comes first.
  const none = await cli([]);
  expect(none.code).toBe(2);
  expect(none.stderr).toMatch(/Commands:[\s\S]*nbd-remapper serve[\s\S]*nbd-remapper: name a command \(see the list above\)\n$/);
});

it('an option given twice takes its last value, as in other tools, instead of failing on a list', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 1024 * 1024);
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('a.sock'), '--cache', '64M', '--cache', '1M', '--block-size', '512', '--block-size', '4096']);
  try {
    expect(server.stdout()).toMatch(/block size 4096, cache 1M,/);
  } finally {
    expect(await server.stop()).toBe(0);
  }
  const twice = await cli(['serve', '--disk', disk, '--disk', dir.file('nope.img')]);
  expect(twice.code).toBe(1);
  expect(twice.stderr).toContain('nope.img');
  expect(twice.stderr).not.toContain(`${disk},`);
  dir.cleanup();
});

it('seal run again on a sealed source is success that says so, not an error (scripts run it again after a restart)', async () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  randomImage(disk, 1024 * 1024);
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control]);
  try {
    const first = await cli(['seal', '--control', control]);
    expect([first.code, first.stdout]).toEqual([0, expect.stringMatching(/^sealed: source is read-only/)]);
    const again = await cli(['seal', '--control', control]);
    expect([again.code, again.stdout]).toEqual([0, expect.stringMatching(/^already sealed: nothing to do \(phase sealed\)/)]);
    expect((await cli(['finish', '--control', control])).code).toBe(0);
    const afterFinish = await cli(['seal', '--control', control]);
    expect([afterFinish.code, afterFinish.stdout]).toEqual([0, expect.stringMatching(/^already sealed: nothing to do \(phase finished\)/)]);
  } finally {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  }
});

it('an offline finish of a disk that does not exist says to name the disk the server ran on, not to create one', async () => {
  const result = await cli(['finish', '--disk', '/nonexistent/disk.img']);
  expect(result.code).toBe(1);
  expect(result.stderr).toMatch(/the disk \/nonexistent\/disk\.img does not exist[\s\S]*fix: give --disk the disk \(or image\) the server ran on/);
  expect(result.stderr).not.toMatch(/truncate/);
});
