import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runTool, TOOL_ENV } from '../../helpers/run-tool.js';
import { scratchDir } from '../../helpers/scratch.js';
import { CLI, startServerProcess, type ServerProcess } from '../../helpers/server-process.js';
import { useCleanups } from '../../helpers/cleanups.js';

/**
 * G5 with real processes: `serve --state`, a real NBD client (python3-libnbd,
 * kill9-client.py) driving reads, writes, FLUSH and FUA, SIGKILL of the server
 * at a random moment, restart on the same state, and a check of every flushed
 * write, of what the server's x-nbd-remapper:written context says recovery kept,
 * and of every original. KILL9_CYCLES sets the cycles per mode (default 25,
 * so a CI run has 50).
 */

const B = 4096;
const MiB = 1024 * 1024;
const DISK_BYTES = 16 * MiB;
// A partition moved forward by 1 MiB: the old one starts at 1 MiB (after the disk's kept first MiB), the new one at
// 2 MiB. The copier copies source block 256 + d to destination block d, whose home is disk block d + 512: every write
// waits for a read, and the old partition's first MiB, once read, is the spill room.
const SHIFT = 2 * MiB;
const COPY_FROM = MiB;
const CYCLES = Number(process.env.KILL9_CYCLES ?? 25);
const CLIENT = fileURLToPath(new URL('./kill9-client.py', import.meta.url));

interface Stats {
  destChecked: number;
  sourceChecked: number;
  sourceEio: number;
  flushes: number;
  fua: number;
  checkpoints: number;
  enospc: number;
  interrupted: number;
  /** Blocks whose every write a kill lost (recovered as never written), and of those, how many read their own lost write. */
  lostWrites?: number;
  lostWriteReadBack?: number;
}

const cleanup = useCleanups();

function taggedDisk(path: string): void {
  const disk = Buffer.alloc(DISK_BYTES);
  for (let p = 0; p < DISK_BYTES / B; p++) {
    const tag = Buffer.alloc(8);
    tag.writeBigInt64LE(BigInt(-(p + 1)));
    for (let i = 0; i < B; i += 8) tag.copy(disk, p * B + i);
  }
  writeFileSync(path, disk);
}

/** Runs one client cycle; resolves with its stdout. `onWorking` fires when verification is done and the workload runs. */
function runClient(args: string[], onWorking: () => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [CLIENT, ...args], { env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('WORKING')) onWorking();
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`kill9-client exited ${code}:\n${err}${out}`));
    });
  });
}

describe.each(['safe', 'fast'] as const)('kill -9 of the server under a real client (%s mode)', (mode) => {
  it(`keeps every flushed write and every original it must, over ${CYCLES} kills`, async () => {
    const dir = scratchDir(`nbd-remapper-kill9-${mode}-`);
    cleanup(() => dir.cleanup());
    const disk = dir.file('disk.img');
    taggedDisk(disk);
    const mapFile = dir.file('map.json');
    writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: DISK_BYTES - SHIFT, diskOffset: SHIFT }] }));
    const state = dir.file('disk.state');
    const control = dir.file('control.sock');
    const modelPath = dir.file('model.json');
    writeFileSync(
      modelPath,
      JSON.stringify({
        possible: {},
        released: [],
        confirmed: [],
        nextTag: 1,
        diskBlocks: DISK_BYTES / B,
        destBlocks: (DISK_BYTES - SHIFT) / B,
        homeShift: SHIFT / B,
        copyFrom: COPY_FROM / B,
        stats: { destChecked: 0, sourceChecked: 0, sourceEio: 0, flushes: 0, fua: 0, checkpoints: 0, enospc: 0, interrupted: 0 },
      }),
    );
    const serveArgs = ['serve', '--disk', disk, '--map', mapFile, '--state', state, '--cache', '256K', '--revisit-cache', '128K', '--socket', dir.file('nbd.sock'), '--control', control];
    if (mode === 'safe') serveArgs.push('--safe');
    const start = async (): Promise<ServerProcess> => {
      const server = await startServerProcess(serveArgs);
      cleanup(() => server.stop('SIGKILL'));
      return server;
    };

    let server = await start();
    const sealed = await runTool(process.execPath, [CLI, 'seal', '--control', control]);
    expect(sealed.code, sealed.stderr).toBe(0);
    const clientArgs = (seed: number, verifyOnly: boolean): string[] => [
      server.uri('source'),
      server.uri('destination'),
      control,
      modelPath,
      String(seed),
      mode,
      verifyOnly ? '1' : '0',
    ];

    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const delayMs = 50 + Math.floor(Math.random() * 700);
      const current = server;
      await runClient(clientArgs(cycle + 1, false), () => {
        setTimeout(() => current.child.kill('SIGKILL'), delayMs);
      });
      await current.exited;
      server = await start();
    }
    const verified = await runClient(clientArgs(0, true), () => undefined);
    const stats = JSON.parse(verified.slice(verified.indexOf('{'))) as Stats;

    const finished = await runTool(process.execPath, [CLI, 'finish', '--control', control], { timeoutMs: 120_000 });
    expect(finished.code, finished.stderr).toBe(0);
    expect(await server.stop()).toBe(0);
    const model = JSON.parse(readFileSync(modelPath, 'utf8')) as { possible: Record<string, Array<number | 'unwritten'>> };
    const image = readFileSync(disk);
    let landedChecked = 0;
    for (const [key, tags] of Object.entries(model.possible)) {
      // Never durably written: after finish its home holds whatever it held (an original or a former slot).
      if (tags[0] === 'unwritten') continue;
      const home = Number(key) * B + SHIFT;
      expect(image.readBigInt64LE(home), `disk block of destination block ${key} after finish`).toBe(BigInt(tags[0] as number));
      landedChecked++;
    }
    console.log(
      `kill -9 (${mode}): ${CYCLES} cycles; flushes ${stats.flushes}, FUA writes ${stats.fua}, checkpoints ${stats.checkpoints}, ENOSPC ${stats.enospc}; ` +
        `checked ${stats.destChecked} destination and ${stats.sourceChecked} source block reads (${stats.sourceEio} allowed EIO); ` +
        `${stats.lostWrites ?? 0} blocks recovered as never written (${stats.lostWriteReadBack ?? 0} reading their own lost write); ${landedChecked} blocks verified on disk after finish`,
    );
    expect(stats.interrupted).toBe(CYCLES);
    expect(stats.flushes).toBeGreaterThan(0);
    expect(landedChecked).toBeGreaterThan(0);
  }, 600_000);
});
