import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustRun, runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
const B = 4096;
const DISK = 16 * MiB;
const SHIFT = MiB; // destination block d lives on disk block d + 256

interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

/** Destination blocks that `nbdinfo --map=x-nbd-remapper:written` reports written. */
async function writtenByNbdinfo(uri: string): Promise<number[]> {
  const map = JSON.parse(await mustRun('nbdinfo', ['--map=x-nbd-remapper:written', '--json', uri])) as MapEntry[];
  expect(map.reduce((sum, e) => sum + e.length, 0)).toBe(DISK - SHIFT);
  const out: number[] = [];
  for (const e of map) if ((e.type & 1) !== 0) for (let d = e.offset / B; d < (e.offset + e.length) / B; d++) out.push(d);
  return out;
}

async function nbdsh(script: string): Promise<string> {
  const result = await runTool('nbdsh', ['-c', script]);
  if (result.code !== 0) throw new Error(`nbdsh failed (${result.code}):\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

describe('the x-nbd-remapper:written meta context with real clients', () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  const control = dir.file('control.sock');
  let server: ServerProcess;

  beforeAll(async () => {
    randomImage(disk, DISK);
    const map = dir.file('map.json');
    writeFileSync(map, JSON.stringify({ extents: [{ destOffset: 0, length: DISK - SHIFT, diskOffset: SHIFT }] }));
    server = await startServerProcess(['serve', '--disk', disk, '--map', map, '--cache', '64K', '--socket', dir.file('nbd.sock'), '--control', control]);
    const sealed = await runTool(process.execPath, [CLI, 'seal', '--control', control]);
    expect(sealed.code, sealed.stderr).toBe(0);
    // Reading the first 2 MiB of the source releases the homes of destination blocks 0–255.
    await nbdsh(
      [
        'src = nbd.NBD()',
        `src.connect_uri(${JSON.stringify(server.uri('source'))})`,
        `src.pread(${2 * MiB}, 0)`,
        `h.connect_uri(${JSON.stringify(server.uri('destination'))})`,
        `h.pwrite(b"\\x01" * ${2 * B}, ${10 * B})`,
        `h.pwrite(b"\\x02" * ${B}, ${100 * B})`,
        `h.zero(${4 * B}, ${200 * B})`,
        `h.pwrite(b"\\x03" * ${B}, ${3000 * B})`,
        'h.flush()',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  it('is offered by destination only, after base:allocation', async () => {
    const destination = JSON.parse(await mustRun('nbdinfo', ['--json', server.uri('destination')])) as { exports: Array<{ contexts: string[] }> };
    expect(destination.exports[0].contexts).toEqual(['base:allocation', 'x-nbd-remapper:written']);
    const source = JSON.parse(await mustRun('nbdinfo', ['--json', server.uri('source')])) as { exports: Array<{ contexts: string[] }> };
    expect(source.exports[0].contexts).toEqual(['base:allocation']);
  });

  it('nbdinfo --map=x-nbd-remapper:written shows exactly the blocks written, held or landed, zeroes included', async () => {
    expect(await writtenByNbdinfo(server.uri('destination'))).toEqual([10, 11, 100, 200, 201, 202, 203, 3000]);
  });

  it('with both contexts selected, one BLOCK_STATUS is answered for each, in full and with REQ_ONE', async () => {
    const out = await nbdsh(
      [
        'h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)',
        'h.add_meta_context("x-nbd-remapper:written")',
        `h.connect_uri(${JSON.stringify(server.uri('destination'))})`,
        'for flags in (0, nbd.CMD_FLAG_REQ_ONE):',
        '    seen = {}',
        '    def answer(context, offset, entries, err):',
        '        seen[context] = list(entries)',
        '        return 0',
        `    h.block_status(${16 * B}, ${8 * B}, answer, flags)`,
        '    print(flags, sorted(seen.items()))',
      ].join('\n'),
    );
    const lines = out.trim().split('\n');
    // Blocks 8–23: 8, 9 unwritten, 10, 11 written, 12–23 unwritten; base:allocation calls it all data (random bytes).
    expect(lines[0]).toBe(`0 [('base:allocation', [${16 * B}, 0]), ('x-nbd-remapper:written', [${2 * B}, 0, ${2 * B}, 1, ${12 * B}, 0])]`);
    expect(lines[1]).toBe(`8 [('base:allocation', [${16 * B}, 0]), ('x-nbd-remapper:written', [${2 * B}, 0])]`);
  });

  it("QEMU's client reads it too (x-dirty-bitmap: written blocks show as not data, as QEMU reads a dirty bitmap)", async () => {
    const opts = `driver=nbd,path=${dir.file('nbd.sock')},export=destination,x-dirty-bitmap=x-nbd-remapper:written`;
    const map = JSON.parse(await mustRun('qemu-img', ['map', '--output=json', '--image-opts', opts])) as Array<{ start: number; length: number; data: boolean }>;
    const written: number[] = [];
    for (const e of map) if (!e.data) for (let d = e.start / B; d < (e.start + e.length) / B; d++) written.push(d);
    expect(written).toEqual([10, 11, 100, 200, 201, 202, 203, 3000]);
  });

  it('selected alone, it answers BLOCK_STATUS without base:allocation', async () => {
    const out = await nbdsh(
      [
        'h.add_meta_context("x-nbd-remapper:written")',
        `h.connect_uri(${JSON.stringify(server.uri('destination'))})`,
        'seen = []',
        `h.block_status(${B}, ${100 * B}, lambda context, offset, entries, err: seen.append((context, list(entries))) or 0)`,
        'print(seen)',
      ].join('\n'),
    );
    expect(out.trim()).toBe(`[('x-nbd-remapper:written', [${B}, 1])]`);
  });

  it('after finish destination is the disk itself: every block is reported written', async () => {
    const finished = await runTool(process.execPath, [CLI, 'finish', '--control', control], { timeoutMs: 120_000 });
    expect(finished.code, finished.stderr).toBe(0);
    const all = await writtenByNbdinfo(server.uri('destination'));
    expect(all).toHaveLength((DISK - SHIFT) / B);
  });
});
