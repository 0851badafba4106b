/**
 * Issue 2: our `source` export against nbdkit file and qemu-nbd on identical
 * page-cached images with the same clients; peers interleaved round by round.
 * Twice: read-write (ours through the remap engine, unsealed), and read-only
 * (ours a plain view, which sends cached reads from the page cache).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROUNDS, SIZE } from './config.js';
import type { BenchGroup } from './group.js';
import { copyImage } from './images.js';
import { ALL_PEERS, NBDKIT_FILE, NBDKIT_FILE_READ_ONLY, OURS, READ_ONLY_PEERS, uriOf, type Peer } from './peers.js';
import { stopServer, waitForSocket } from './proc.js';
import { Samples, atLeast, describeTarget, formatNumber, formatRatio, printTable, progress, verdict, type Target } from './table.js';
import { fioRandom, mbPerSecond, seqRead, seqWrite } from './workloads.js';

interface Workload {
  name: string;
  unit: 'MB/s' | 'IOPS';
  /** Target for ours/nbdkit. */
  target?: Target;
  run(uri: string, master: string): Promise<number>;
}

const WORKLOADS: Workload[] = [
  { name: 'seq read, 1 conn (nbdcopy -C 1)', unit: 'MB/s', target: atLeast(1.0), run: async (uri) => mbPerSecond(SIZE, await seqRead(uri, 1)) },
  { name: 'seq read, default conns (nbdcopy)', unit: 'MB/s', run: async (uri) => mbPerSecond(SIZE, await seqRead(uri)) },
  { name: 'seq write, 1 conn (nbdcopy -C 1)', unit: 'MB/s', run: async (uri, master) => mbPerSecond(SIZE, await seqWrite(master, uri, 1)) },
  { name: 'seq write, default conns (nbdcopy)', unit: 'MB/s', run: async (uri, master) => mbPerSecond(SIZE, await seqWrite(master, uri)) },
  { name: '4K random read, QD16 (fio nbd)', unit: 'IOPS', target: atLeast(0.8), run: (uri) => fioRandom(uri, 'randread', SIZE) },
  { name: '4K random write, QD16 (fio nbd)', unit: 'IOPS', run: (uri) => fioRandom(uri, 'randwrite', SIZE) },
];

const READ_WORKLOADS: Workload[] = WORKLOADS.filter((w) => w.name.includes('read'));

/** One table: these servers, these workloads. */
interface Comparison {
  title: string;
  peers: readonly Peer[];
  nbdkit: Peer;
  workloads: readonly Workload[];
  notes: string[];
}

const COMPARISONS: readonly Comparison[] = [
  {
    title: 'Source export vs peers',
    peers: ALL_PEERS,
    nbdkit: NBDKIT_FILE,
    workloads: WORKLOADS,
    notes: [
      `${OURS.name} serves the unsealed source through the remap engine; all servers on unix sockets, page-cached images; each server is warmed by one untimed sequential read.`,
      '4K random writes are bound by the page cache and swing widely between runs: compare within a run only.',
    ],
  },
  {
    title: 'Read-only export vs peers',
    peers: READ_ONLY_PEERS,
    nbdkit: NBDKIT_FILE_READ_ONLY,
    workloads: READ_WORKLOADS,
    notes: ['Every server read-only (-r); ours a plain view that sends cached reads from the page cache (sendfile) instead of copying them.'],
  },
];

export const peersGroup: BenchGroup = {
  name: 'peers',
  summary: 'source export vs nbdkit file and qemu-nbd: sequential and 4K random I/O (issue 2)',
  tools: ['nbdcopy', 'nbdkit', 'qemu-nbd', 'fio'],
  async run(dir, master) {
    const samples = new Samples();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const comparison of COMPARISONS) {
        for (const peer of comparison.peers) {
          // Each peer its own page-cached copy, so one's writes never change another's reads.
          const slug = peer.name.replace(/\W+/g, '-');
          const image = join(dir, `${slug}.img`);
          if (!existsSync(image)) copyImage(master, image);
          const scratch = join(dir, slug);
          mkdirSync(scratch, { recursive: true });
          const server = peer.start(image, join(dir, `${slug}.sock`), scratch);
          try {
            await waitForSocket(server);
            // One untimed pass: steady state, not a cold start (V8's JIT, our buffer pool; +15–25% for us, nothing for nbdkit).
            await seqRead(uriOf(server.socket), 1);
            for (const w of comparison.workloads) samples.add(`${w.name}\0${peer.name}`, await w.run(uriOf(server.socket), master));
          } finally {
            await stopServer(server);
          }
        }
      }
      progress(`peers: round ${round}/${ROUNDS} done`);
    }
    for (const { title, peers, nbdkit, workloads, notes } of COMPARISONS) {
      const header = ['workload', ...peers.map((p) => p.name), 'ours/nbdkit', 'ours/qemu-nbd', 'target (vs nbdkit)', 'met'];
      const rows = workloads.map((w) => {
        const m = peers.map((p) => samples.median(`${w.name}\0${p.name}`));
        const vsKit = m[0] / m[peers.indexOf(nbdkit)];
        return [`${w.name} [${w.unit}]`, ...m.map(formatNumber), formatRatio(vsKit), formatRatio(m[0] / m[2]), describeTarget(w.target), verdict(vsKit, w.target)];
      });
      printTable(`${title} (${SIZE / 2 ** 20} MiB image, medians of ${ROUNDS} interleaved rounds)`, header, rows, notes);
    }
  },
};
