import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { rssOf } from '../helpers/process-memory.js';
import { mustRun, runTool, type ToolResult } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { useCleanups } from '../helpers/cleanups.js';

/**
 * Whole migrations as a person runs them: `serve --map`, seal, copy through
 * the two exports with a real NBD client, `finish` — then the image file
 * itself is checked against the layout the map describes.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

interface Extent {
  destOffset: number;
  length: number;
  diskOffset: number;
}

const cleanup = useCleanups();

const cli = (args: string[], timeoutMs = 120_000): Promise<ToolResult> => runTool(process.execPath, [CLI, ...args], { timeoutMs });

async function mustCli(args: string[]): Promise<string> {
  const result = await cli(args);
  if (result.code !== 0) throw new Error(`nbd-remapper ${args.join(' ')} exited ${result.code}\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

interface Migration {
  dir: ReturnType<typeof scratchDir>;
  disk: string;
  control: string;
  server: ServerProcess;
  status(): Promise<Record<string, unknown>>;
}

async function startMigration(original: Buffer | number, extents: readonly Extent[], serveArgs: string[]): Promise<Migration & { original: Buffer }> {
  const dir = scratchDir('nbd-remapper-migration-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  const bytes = typeof original === 'number' ? randomImage(disk, original) : (writeFileSync(disk, original), original);
  const mapFile = dir.file('map.json');
  writeFileSync(mapFile, JSON.stringify({ extents }));
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--map', mapFile, '--socket', dir.file('nbd.sock'), '--control', control, ...serveArgs]);
  cleanup(async () => {
    await server.stop();
  });
  return {
    dir,
    disk,
    control,
    server,
    original: bytes,
    status: async () => JSON.parse(await mustCli(['status', '--json', '--control', control])) as Record<string, unknown>,
  };
}

/**
 * The disk after finish, extent by extent: each home holds its destination bytes. Blocks outside
 * the map are not compared — once read from source they may have served as spill slots.
 */
function diskByExtents(disk: Buffer, extents: readonly Extent[]): Buffer {
  return Buffer.concat(extents.map((e) => disk.subarray(e.diskOffset, e.diskOffset + e.length)));
}

function firstDifference(a: Buffer, b: Buffer): string {
  if (a.length !== b.length) return `sizes differ: ${a.length} vs ${b.length}`;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return `first difference at byte ${i} (block ${Math.floor(i / 4096)})`;
  return 'identical';
}

/**
 * Copies the whole source onto the destination (what fits), finishes, stops the server; returns what the
 * destination served before finish and the status right after the copy.
 */
async function migrate(
  m: Migration,
  destinationSize: number,
  options: { copyArgs?: string[]; afterSeal?: () => Promise<unknown> } = {},
): Promise<{ destination: Buffer; afterCopy: Record<string, unknown> }> {
  const before = await cli(['finish', '--control', m.control]);
  expect(before.code).not.toBe(0);
  expect(before.stderr).toMatch(/not sealed[\s\S]*fix: seal/);

  await nbdshScript(m.server.uri('destination'), 'expect_errno(errno.EPERM, lambda: h.pwrite(b"x" * 4096, 0))');
  expect(await mustCli(['seal', '--control', m.control])).toMatch(/sealed/);
  await nbdshScript(m.server.uri('source'), 'expect_errno(errno.EPERM, lambda: h.pwrite(b"x" * 4096, 0))');

  await options.afterSeal?.();
  const copied = await cli(['copy', '--from', m.server.uri('source'), '--to', m.server.uri('destination'), ...(options.copyArgs ?? [])]);
  expect(copied.code, copied.stderr).toBe(0);
  // Between the remapper's two exports without --control: a crash could not be resumed, and it says so.
  expect(copied.stderr).toMatch(/copying through nbd-remapper without --control: if the server crashes, this copy cannot resume/);
  const afterCopy = await m.status();
  expect(afterCopy.enospc).toBe(0);
  expect(Number(afterCopy.heldInRamBytes)).toBeLessThanOrEqual(Number(afterCopy.cacheLimitBytes));
  const served = m.dir.file('destination-before-finish.img');
  await mustRun('nbdcopy', [m.server.uri('destination'), served]);
  const destination = readFileSync(served);
  expect(destination.length).toBe(destinationSize);

  // finish is refused while a client still has source attached, and says how many.
  await nbdshScript(
    m.server.uri('source'),
    `import subprocess
r = subprocess.run([${JSON.stringify(process.execPath)}, ${JSON.stringify(CLI)}, "finish", "--control", ${JSON.stringify(m.control)}], capture_output=True, text=True)
assert r.returncode != 0, r.stdout
assert "1 attached client" in r.stderr, r.stderr`,
  );

  const finished = await mustCli(['finish', '--control', m.control]);
  expect(finished).toMatch(/finished/);
  const exports = JSON.parse(await mustRun('nbdinfo', ['--list', '--json', m.server.uri('destination')])) as { exports: Array<{ 'export-name': string }> };
  expect(exports.exports.map((e) => e['export-name'])).toEqual(['destination']);
  // After finish the destination is a plain view of the disk: it still serves the same bytes.
  const after = m.dir.file('destination-after-finish.img');
  await mustRun('nbdcopy', [m.server.uri('destination'), after]);
  expect(firstDifference(readFileSync(after), destination)).toBe('identical');
  expect(await m.server.stop()).toBe(0);
  return { destination, afterCopy };
}

it('permutes a disk through a small cache: spills, finish, and the image is the new layout', async () => {
  const size = 32 * MiB;
  // Sixteen 2 MiB extents in reverse disk order: every destination block's home is still unread when it is written.
  const extents: Extent[] = Array.from({ length: 16 }, (_, i) => ({ destOffset: i * 2 * MiB, length: 2 * MiB, diskOffset: (15 - i) * 2 * MiB }));
  const m = await startMigration(size, extents, ['--cache', '256K']);
  const { destination, afterCopy } = await migrate(m, size);
  console.log(`reverse permutation, 256 KiB cache, after copy: ${JSON.stringify(afterCopy)}`);
  expect(afterCopy.spilled).toBeGreaterThan(0);
  expect(firstDifference(destination, m.original)).toBe('identical');
  expect(firstDifference(diskByExtents(readFileSync(m.disk), extents), m.original)).toBe('identical');
});

it('moves a partition forward over itself (shift by 1 MiB) with a 64 KiB cache; the first MiB, outside the map, stays as it was', async () => {
  const size = 24 * MiB;
  // The old partition is disk 1–23 MiB, the new one 2–24 MiB: the old one's first MiB, once read, is the spill room.
  const length = size - 2 * MiB;
  const extents: Extent[] = [{ destOffset: 0, length, diskOffset: 2 * MiB }];
  const m = await startMigration(size, extents, ['--cache', '64K']);
  const plan = m.dir.file('plan.json');
  writeFileSync(plan, JSON.stringify({ moves: [{ from: MiB, to: 0, length }] }));
  // The kernel reads the partition table again after the seal (a rescan): the disk's first MiB is released, yet kept.
  const rescan = () => nbdshScript(m.server.uri('source'), `h.pread(${MiB}, 0)`);
  const { destination, afterCopy } = await migrate(m, length, { copyArgs: ['--plan', plan], afterSeal: rescan });
  expect(afterCopy.spilled).toBeGreaterThan(0);
  expect(firstDifference(destination, m.original.subarray(MiB, MiB + length))).toBe('identical');
  const disk = readFileSync(m.disk);
  expect(firstDifference(diskByExtents(disk, extents), destination)).toBe('identical');
  expect(firstDifference(disk.subarray(0, MiB), m.original.subarray(0, MiB)), 'the first MiB (tables, boot loader) as it was').toBe('identical');
  console.log(`shift by 1 MiB, 64 KiB cache, after copy: spilled ${afterCopy.spilled}, held in RAM ${afterCopy.heldInRam}, landed ${afterCopy.landed}`);
});
it('reports cache use, spills and landing in status while the copy is held', async () => {
  const size = 8 * MiB;
  const extents: Extent[] = [
    { destOffset: 0, length: 4 * MiB, diskOffset: 4 * MiB },
    { destOffset: 4 * MiB, length: 4 * MiB, diskOffset: 0 },
  ];
  const m = await startMigration(size, extents, ['--cache', '1M']);
  await mustCli(['seal', '--control', m.control]);
  // Read the first half of source (releases disk 0–4 MiB), write all of destination 0–4 MiB: its home (disk 4–8 MiB) is unread.
  await nbdshScript(
    m.server.uri('destination'),
    `src = nbd.NBD(); src.connect_uri(${JSON.stringify(m.server.uri('source'))})
for off in range(0, ${4 * MiB}, ${MiB}):
    src.pread(${MiB}, off)
h.pwrite(b"\\xab" * ${4 * MiB}, 0)
assert h.pread(${4 * MiB}, 0) == b"\\xab" * ${4 * MiB}`,
  );
  const held = await m.status();
  expect(held.phase).toBe('sealed');
  expect(held.heldInRamBytes).toBeLessThanOrEqual(MiB);
  expect(Number(held.heldInRam) + Number(held.spilled)).toBe(1024);
  expect(held.spilled).toBeGreaterThan(0);
  expect(held.originalsOverwritten).toBeGreaterThan(0); // spilling overwrote released originals
  expect(held.released).toBe(1024);
  // The human form names the same facts.
  const human = await mustCli(['status', '--control', m.control]);
  expect(human).toMatch(/phase:\s+sealed/);
  expect(human).toMatch(/spilled/);
});

it('serves 1 TiB: whole-destination WRITE_ZEROES and TRIM (what mkfs sends) are held as extents, not buffers', async () => {
  const dir = scratchDir('nbd-remapper-tib-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('tib.img');
  await mustRun('truncate', ['-s', '1T', disk]);
  const control = dir.file('control.sock');
  const started = Date.now();
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--control', control, '--cache', '64M', '--revisit-cache', '16M']);
  cleanup(async () => {
    await server.stop();
  });
  const startMs = Date.now() - started;
  await mustCli(['seal', '--control', control]);
  // NBD lengths are 32-bit: a 1 TiB zero goes out as 256 requests just under 4 GiB, as the kernel splits a discard.
  await nbdshScript(
    server.uri('destination'),
    `step = 4 * 1024 ** 3 - 1024 ** 2
for fn in (h.zero, h.trim):
    off = 0
    while off < size:
        n = min(step, size - off)
        fn(n, off)
        off += n
h.pwrite(b"\\x5a" * 65536, 123 * 1024 ** 3)
assert h.pread(65536, 123 * 1024 ** 3) == b"\\x5a" * 65536
assert h.pread(65536, 500 * 1024 ** 3) == bytes(65536)
h.flush()`,
    300_000,
  );
  const status = JSON.parse(await mustCli(['status', '--json', '--control', control])) as Record<string, number>;
  const rssKiB = rssOf(server.child.pid as number) / 1024;
  console.log(`1 TiB: ready in ${startMs} ms; after zero+trim of all of it: server RSS ${(rssKiB / 1024).toFixed(0)} MiB; held as zero ${status.heldAsZero} blocks`);
  expect(status.heldAsZero).toBeGreaterThan(268_000_000);
  expect(status.heldInRamBytes).toBeLessThanOrEqual(64 * KiB);
  // The budget: cache + revisit cache + 96 MiB. A buffer per zeroed block would be gigabytes.
  expect(rssKiB).toBeLessThan((64 + 16 + 96) * 1024);
});

it('refuses maps that break a rule, naming the extent and the rule', async () => {
  const dir = scratchDir('nbd-remapper-maps-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  await mustRun('truncate', ['-s', '16M', disk]);
  const cases: Array<{ extents: unknown; message: RegExp }> = [
    { extents: [{ destOffset: 0, length: MiB, diskOffset: 0 }, { destOffset: 2 * MiB, length: MiB, diskOffset: MiB }], message: /extent 1[\s\S]*gap|gap[\s\S]*extent 1/i },
    { extents: [{ destOffset: 0, length: 2 * MiB, diskOffset: 0 }, { destOffset: 2 * MiB, length: MiB, diskOffset: MiB }], message: /extent 1[\s\S]*overlap|overlap[\s\S]*extent 1/i },
    { extents: [{ destOffset: 0, length: MiB, diskOffset: 16 * MiB }], message: /extent 0[\s\S]*(beyond|past|outside|end)/i },
    { extents: [{ destOffset: 0, length: MiB, diskOffset: 100 }], message: /extent 0[\s\S]*(align|multiple)/i },
  ];
  for (const [i, c] of cases.entries()) {
    const mapFile = dir.file(`map${i}.json`);
    writeFileSync(mapFile, JSON.stringify({ extents: c.extents }));
    const result = await cli(['serve', '--disk', disk, '--map', mapFile, '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
    expect(result.code, result.stderr).not.toBe(0);
    expect(result.stderr).toMatch(c.message);
    expect(result.stderr).toMatch(/fix: /);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  }
  const missing = await cli(['serve', '--disk', disk, '--map', dir.file('nope.json'), '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
  expect(missing.stderr).toMatch(/cannot read the map file[\s\S]*ENOENT[\s\S]*fix:/);
  // --map and --disk swapped (or a device named): refused at once, not read into memory.
  const image = dir.file('big.img');
  await mustRun('truncate', ['-s', '1G', image]);
  for (const notAMap of [image, '/dev/zero']) {
    const swapped = await cli(['serve', '--disk', disk, '--map', notAMap, '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
    expect(swapped.code).toBe(1);
    expect(swapped.stderr).toMatch(/the map file .* is larger than 32 MiB, more than a map of the most extents supported \(100000\) needs/);
    expect(swapped.stderr).toMatch(/fix: check that --map names the JSON map and --disk the disk/);
  }
  expect(existsSync(`${disk}.remap-state`)).toBe(false);
  // A map listed block by block is the shape it describes: one extent.
  const blockwise = dir.file('blockwise.json');
  const blocks = (15 * MiB) / 4096;
  writeFileSync(blockwise, JSON.stringify({ extents: Array.from({ length: blocks }, (_, i) => ({ destOffset: i * 4096, length: 4096, diskOffset: MiB + i * 4096 })) }));
  const merged = await startServerProcess(['serve', '--disk', disk, '--map', blockwise, '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
  expect(merged.stdout()).toContain(`map: ${blockwise} — 1 extent(s) (${blocks} listed, adjacent ones merged), destination 15 MiB`);
  expect(await merged.stop()).toBe(0);
  const tiny = await cli(['serve', '--disk', disk, '--cache', '1K', '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
  expect(tiny.code).toBe(2);
  expect(tiny.stderr).toMatch(/--cache 1K is smaller than one block/);
  // More than any machine here has: refused at start, not by the OOM killer once it fills.
  const huge = await cli(['serve', '--disk', disk, '--cache', '100T', '--socket', dir.file('nbd.sock'), '--control', dir.file('c.sock')]);
  expect(huge.code).toBe(2);
  expect(huge.stderr).toMatch(/--cache 100 TiB and --revisit-cache 64 MiB .* to keep track of a full cache of 4096-byte blocks\) need 102 TiB of RAM, more than this (machine's memory|process's cgroup memory limit)/);
  expect(huge.stderr).toMatch(/fix: give a smaller --cache/);
  const noServer = await cli(['status', '--control', dir.file('nobody.sock')]);
  expect(noServer.code).not.toBe(0);
  expect(noServer.stderr).toMatch(/fix: /);
});

it("runs the README's 5-block map with a 2-block cache: block 1 goes to 4, 2→3, 3→1, 4→5, 5→2", async () => {
  const B = 4096;
  const original = Buffer.concat([1, 2, 3, 4, 5].map((n) => Buffer.alloc(B, n)));
  const homes = [4, 3, 1, 5, 2];
  const extents: Extent[] = homes.map((home, i) => ({ destOffset: i * B, length: B, diskOffset: (home - 1) * B }));
  const m = await startMigration(original, extents, ['--cache', '8K']);
  const { destination } = await migrate(m, 5 * B);
  expect(firstDifference(destination, original)).toBe('identical');
  const disk = readFileSync(m.disk);
  expect([0, 1, 2, 3, 4].map((p) => disk[p * B])).toEqual([3, 5, 2, 1, 4]);
});

it('a source block read again after its home was overwritten: the revisit cache serves the original, or EIO — never destination data', async () => {
  for (const revisit of ['1M', '0']) {
    const m = await startMigration(MiB, [{ destOffset: 0, length: MiB, diskOffset: 0 }], ['--cache', '4K', '--revisit-cache', revisit]);
    await mustCli(['seal', '--control', m.control]);
    // Eight blocks through a one-block cache: at least seven must land or spill over released originals.
    const out = await nbdshScript(
      m.server.uri('source'),
      `dst = nbd.NBD(); dst.connect_uri(${JSON.stringify(m.server.uri('destination'))})
originals = [h.pread(4096, i * 4096) for i in range(8)]
for i in range(8):
    dst.pwrite(b"\\xee" * 4096, i * 4096)
dst.flush()
eio = 0
for i in range(8):
    try:
        assert h.pread(4096, i * 4096) == originals[i], "source block %d changed" % i
    except nbd.Error as e:
        assert e.errno in ("EIO", errno.EIO), e
        eio += 1
assert all(dst.pread(4096, i * 4096) == b"\\xee" * 4096 for i in range(8))
print("EIO", eio)`,
    );
    const eio = Number(/EIO (\d+)/.exec(out)?.[1]);
    const status = await m.status();
    const revisitCache = status.revisitCache as { hits: number; misses: number };
    expect(Number(status.originalsOverwritten)).toBeGreaterThanOrEqual(7);
    if (revisit === '0') {
      expect(eio).toBeGreaterThanOrEqual(7);
      expect(revisitCache.misses).toBe(eio);
      expect(m.server.stdout() + m.server.stderr()).toMatch(/source read of disk block \d+ .*failed with EIO/);
    } else {
      expect(eio).toBe(0);
      expect(revisitCache.hits).toBeGreaterThanOrEqual(7);
    }
    await m.server.stop();
  }
});

it('G9 through a real client: a full cache with nothing released answers ENOSPC to every write in flight, and writes land once the source is read', async () => {
  const m = await startMigration(MiB, [{ destOffset: 0, length: MiB, diskOffset: 0 }], ['--cache', '16K']);
  await mustCli(['seal', '--control', m.control]);
  // 16 writes of 64 KiB in flight at once: each needs 16 blocks, the cache holds 4, and no source block is released yet.
  const out = await nbdshScript(
    m.server.uri('destination'),
    `chunk = 65536
cookies = [h.aio_pwrite(nbd.Buffer.from_bytearray(bytearray([0x40 + i]) * chunk), i * chunk) for i in range(16)]
while h.aio_in_flight() > 0:
    h.poll(-1)
enospc = 0
for c in cookies:
    try:
        h.aio_command_completed(c)
    except nbd.Error as e:
        assert e.errno in ("ENOSPC", errno.ENOSPC), e
        enospc += 1
print("ENOSPC", enospc)
src = nbd.NBD(); src.connect_uri(${JSON.stringify(m.server.uri('source'))})
for i in range(16):
    src.pread(chunk, i * chunk)
for i in range(16):
    h.pwrite(bytes([0x40 + i]) * chunk, i * chunk)
h.flush()
assert all(h.pread(chunk, i * chunk) == bytes([0x40 + i]) * chunk for i in range(16)), "destination does not read back"`,
  );
  expect(Number(/ENOSPC (\d+)/.exec(out)?.[1])).toBe(16);
  const status = await m.status();
  expect(status.enospc).toBe(16);
  expect(String(status.lastEnospc)).toMatch(/no room for \d+ destination block\(s\).*raise --cache/);
  expect(m.server.stdout() + m.server.stderr()).toMatch(/destination write refused with ENOSPC/);
  // Blocks a refused write left in RAM stay there (landing is lazy); everything else landed.
  expect(Number(status.landed) + Number(status.heldInRam)).toBe(256);
  expect(Number(status.heldInRam)).toBeLessThanOrEqual(4);
});
