import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mustRun, runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir, sparseImage } from '../helpers/scratch.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;

describe('source export with real NBD clients', () => {
  const dir = scratchDir();
  let server: ServerProcess;
  const disk = dir.file('disk.img');
  const size = 64 * MiB;

  beforeAll(async () => {
    // Data at known places, holes elsewhere, so block status has something to say.
    sparseImage(disk, size, [
      { offset: 0, length: MiB },
      { offset: 16 * MiB, length: 2 * MiB },
    ]);
    server = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0', '--socket', dir.file('nbd.sock')]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  for (const kind of ['unix', 'tcp'] as const) {
    it(`nbdinfo --json reports size, flags, block sizes and base:allocation (${kind})`, async () => {
      const info = JSON.parse(await mustRun('nbdinfo', ['--json', server.uri('source', kind)])) as {
        protocol: string;
        exports: Array<Record<string, unknown>>;
      };
      expect(info.protocol).toBe('newstyle-fixed');
      const exp = info.exports[0];
      expect(exp['export-name']).toBe('source');
      expect(exp['export-size']).toBe(size);
      expect(exp['is_read_only']).toBe(false);
      for (const flag of ['can_flush', 'can_fua', 'can_trim', 'can_zero', 'can_df', 'can_multi_conn', 'can_cache']) {
        expect(exp[flag], flag).toBe(true);
      }
      expect(exp['block_size_minimum']).toBe(1);
      expect(exp['block_size_preferred']).toBe(4096);
      expect(exp['block_size_maximum']).toBe(32 * MiB);
      expect(exp['contexts']).toContain('base:allocation');
    });
  }

  it('nbdinfo --list lists the source and destination exports', async () => {
    const out = await mustRun('nbdinfo', ['--list', '--json', server.uri('source', 'unix')]);
    const names = (JSON.parse(out) as { exports: Array<{ 'export-name': string }> }).exports.map((e) => e['export-name']);
    expect(names).toEqual(['source', 'destination']);
  });

  it('nbdinfo --map shows the holes of the sparse image', async () => {
    const map = JSON.parse(await mustRun('nbdinfo', ['--map', '--json', server.uri('source', 'unix')])) as Array<{
      offset: number;
      length: number;
      type: number;
    }>;
    const dataAt = (offset: number): boolean => {
      const extent = map.find((e) => e.offset <= offset && offset < e.offset + e.length);
      if (!extent) throw new Error(`no extent covers ${offset}`);
      return (extent.type & 1) === 0;
    };
    expect(map.reduce((sum, e) => sum + e.length, 0)).toBe(size);
    expect(dataAt(0)).toBe(true);
    expect(dataAt(16 * MiB + 4096)).toBe(true);
    expect(dataAt(8 * MiB)).toBe(false);
    expect(dataAt(40 * MiB)).toBe(false);
  });

  it('nbdcopy copies a 64 MiB random file in and back out byte-identical', async () => {
    const input = dir.file('random.bin');
    const original = randomImage(input, size);
    await mustRun('nbdcopy', [input, server.uri('source', 'unix')]);
    const output = dir.file('copied-out.bin');
    await mustRun('nbdcopy', [server.uri('source', 'tcp'), output]);
    expect(readFileSync(output).equals(original)).toBe(true);
    expect(readFileSync(disk).equals(original)).toBe(true);
  });

  it('qemu-img info, compare and convert through NBD URIs', async () => {
    const uri = server.uri('source', 'tcp');
    const info = JSON.parse(await mustRun('qemu-img', ['info', '--output=json', uri])) as { 'virtual-size': number };
    expect(info['virtual-size']).toBe(size);
    const copy = dir.file('converted.img');
    await mustRun('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', uri, copy]);
    expect(readFileSync(copy).equals(readFileSync(disk))).toBe(true);
    await mustRun('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, copy]);
    // compare must notice a difference too
    const changed = readFileSync(copy);
    changed[5 * MiB] ^= 0xff;
    const altered = dir.file('altered.img');
    await import('node:fs').then((fs) => fs.writeFileSync(altered, changed));
    const different = await runTool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri, altered]);
    expect(different.code).toBe(1);
  });

  it("qemu-io writes a pattern and reads it back; the disk holds it", async () => {
    const uri = server.uri('source', 'unix');
    const out = await mustRun('qemu-io', ['-f', 'raw', '-c', 'write -P 0xab 1M 192k', '-c', 'read -P 0xab 1M 192k', '-c', 'read -P 0xab 1M 1', uri]);
    expect(out).not.toMatch(/Pattern verification failed|error/i);
    const bytes = readFileSync(disk).subarray(MiB, MiB + 192 * 1024);
    expect(bytes.every((b) => b === 0xab)).toBe(true);
    const mismatch = await runTool('qemu-io', ['-f', 'raw', '-c', 'read -P 0xcd 1M 4k', uri]);
    expect(mismatch.stdout + mismatch.stderr).toMatch(/Pattern verification failed/);
  });
});

describe('read-only source', () => {
  it('refuses writes with EPERM and advertises read-only', async () => {
    const dir = scratchDir();
    const disk = dir.file('ro.img');
    randomImage(disk, MiB);
    const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('s'), '--read-only']);
    try {
      const info = JSON.parse(await mustRun('nbdinfo', ['--json', server.uri('source')])) as { exports: Array<Record<string, unknown>> };
      expect(info.exports[0]['is_read_only']).toBe(true);
      const write = await runTool('nbdsh', ['-u', server.uri('source'), '-c', 'h.pwrite(b"x" * 512, 0)']);
      expect(write.code).not.toBe(0);
      expect(write.stderr).toMatch(/read-only|EPERM|Operation not permitted/i);
    } finally {
      expect(await server.stop()).toBe(0);
      dir.cleanup();
    }
  });
});
