/**
 * `npm run bench`: our server against nbdkit (file plugin) and qemu-nbd on the
 * same image with the same clients, interleaved round by round, printing
 * medians and ratios. Not a test: absolute figures on shared machines move 2×
 * between minutes, so only the ratios within one run mean anything.
 *
 * Environment: BENCH_SIZE_MIB (default 1024), BENCH_ROUNDS (3), BENCH_RANDOM_SECONDS (4).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomFillSync } from 'node:crypto';

const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_SIZE_MIB ?? 1024) * MiB;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const RANDOM_SECONDS = Number(process.env.BENCH_RANDOM_SECONDS ?? 4);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const TOOL_ENV = { ...process.env, PATH: `/usr/bin:/bin:/usr/sbin:/sbin:${process.env.PATH ?? ''}` };

interface Peer {
  name: string;
  start(image: string, socket: string): ChildProcess;
}

const PEERS: Peer[] = [
  { name: 'nbd-remapper', start: (image, socket) => spawn(process.execPath, [CLI, 'serve', '--disk', image, '--socket', socket], { stdio: 'ignore' }) },
  { name: 'nbdkit file', start: (image, socket) => spawn('nbdkit', ['-f', '-U', socket, '-e', 'source', 'file', `file=${image}`], { stdio: 'ignore', env: TOOL_ENV }) },
  { name: 'qemu-nbd', start: (image, socket) => spawn('qemu-nbd', ['-f', 'raw', '-x', 'source', '-k', socket, '--persistent', '--cache=writeback', image], { stdio: 'ignore', env: TOOL_ENV }) },
];

interface Workload {
  name: string;
  unit: 'MB/s' | 'IOPS';
  run(uri: string, scratch: string): Promise<number>;
}

function run(command: string, args: string[]): Promise<{ stdout: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { env: TOOL_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code === 0) resolve({ stdout, seconds });
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr}`));
    });
  });
}

const mbPerSecond = (bytes: number, seconds: number): number => bytes / seconds / 1e6;

function fioIops(uri: string, rw: 'randread' | 'randwrite'): Promise<number> {
  return run('fio', [
    '--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--rw=${rw}`, '--bs=4k', '--iodepth=16',
    `--size=${SIZE}`, '--time_based', `--runtime=${RANDOM_SECONDS}`, '--output-format=json',
  ]).then(({ stdout }) => {
    const job = (JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<Record<'read' | 'write', { iops: number }>> }).jobs[0];
    return rw === 'randread' ? job.read.iops : job.write.iops;
  });
}

const WORKLOADS: Workload[] = [
  { name: 'sequential read, 1 connection (nbdcopy)', unit: 'MB/s', run: async (uri) => mbPerSecond(SIZE, (await run('nbdcopy', ['-C', '1', uri, 'null:'])).seconds) },
  { name: 'sequential read, default connections', unit: 'MB/s', run: async (uri) => mbPerSecond(SIZE, (await run('nbdcopy', [uri, 'null:'])).seconds) },
  { name: 'sequential write, 1 connection (nbdcopy)', unit: 'MB/s', run: async (uri, src) => mbPerSecond(SIZE, (await run('nbdcopy', ['-C', '1', src, uri])).seconds) },
  { name: 'sequential write, default connections', unit: 'MB/s', run: async (uri, src) => mbPerSecond(SIZE, (await run('nbdcopy', [src, uri])).seconds) },
  { name: '4 KiB random read, QD16 (fio nbd)', unit: 'IOPS', run: (uri) => fioIops(uri, 'randread') },
  { name: '4 KiB random write, QD16 (fio nbd)', unit: 'IOPS', run: (uri) => fioIops(uri, 'randwrite') },
];

function fillRandom(path: string, size: number): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4 * MiB);
  for (let done = 0; done < size; done += chunk.length) {
    randomFillSync(chunk);
    writeSync(fd, chunk, 0, Math.min(chunk.length, size - done), done);
  }
  closeSync(fd);
}

async function waitForSocket(path: string, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 400 && !existsSync(path); i++) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode} before listening`);
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(path)) throw new Error(`no socket at ${path}`);
  await new Promise((r) => setTimeout(r, 100));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nbd-remapper-bench-'));
  try {
    const source = join(dir, 'source.bin');
    fillRandom(source, SIZE);
    const results = new Map<string, number[]>();
    console.log(`image ${SIZE / MiB} MiB, ${ROUNDS} rounds, peers interleaved per workload\n`);
    for (let round = 1; round <= ROUNDS; round++) {
      for (const peer of PEERS) {
        // Each peer gets its own page-cached copy so writes of one never change another's reads.
        const image = join(dir, `${peer.name.replace(/\W+/g, '-')}.img`);
        if (!existsSync(image)) fillRandom(image, SIZE);
        const socket = join(dir, `${peer.name.replace(/\W+/g, '-')}.sock`);
        const child = peer.start(image, socket);
        try {
          await waitForSocket(socket, child);
          const uri = `nbd+unix:///source?socket=${socket}`;
          for (const w of WORKLOADS) {
            const value = await w.run(uri, source);
            const key = `${w.name}\u0000${peer.name}`;
            results.set(key, [...(results.get(key) ?? []), value]);
          }
        } finally {
          child.kill('SIGTERM');
          await new Promise((r) => child.once('exit', r));
          rmSync(socket, { force: true });
        }
      }
      process.stderr.write(`round ${round}/${ROUNDS} done\n`);
    }
    const ours = PEERS[0].name;
    const header = ['workload', ...PEERS.map((p) => p.name), ...PEERS.slice(1).map((p) => `ours/${p.name}`)];
    const rows = WORKLOADS.map((w) => {
      const m = PEERS.map((p) => median(results.get(`${w.name}\u0000${p.name}`) ?? [NaN]));
      return [`${w.name} [${w.unit}]`, ...m.map((x) => x.toFixed(0)), ...m.slice(1).map((x) => (m[0] / x).toFixed(2))];
    });
    console.log(`| ${header.join(' | ')} |`);
    console.log(`|${header.map(() => '---').join('|')}|`);
    for (const row of rows) console.log(`| ${row.join(' | ')} |`);
    console.log(`\nmedians of ${ROUNDS} rounds; ${ours} served over a unix socket like the peers.`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
