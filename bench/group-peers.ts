/**
 * Issue 2: our `source` export against nbdkit file and qemu-nbd on identical
 * page-cached images with the same clients; peers interleaved round by round.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROUNDS, SIZE } from './config.js';
import type { BenchGroup } from './group.js';
import { copyImage } from './images.js';
import { ALL_PEERS, OURS, NBDKIT_FILE, uriOf } from './peers.js';
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

export const peersGroup: BenchGroup = {
  name: 'peers',
  summary: 'source export vs nbdkit file and qemu-nbd: sequential and 4K random I/O (issue 2)',
  async run(dir, master) {
    const samples = new Samples();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const peer of ALL_PEERS) {
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
          for (const w of WORKLOADS) samples.add(`${w.name}\0${peer.name}`, await w.run(uriOf(server.socket), master));
        } finally {
          await stopServer(server);
        }
      }
      progress(`peers: round ${round}/${ROUNDS} done`);
    }
    const header = ['workload', ...ALL_PEERS.map((p) => p.name), 'ours/nbdkit', 'ours/qemu-nbd', 'target (vs nbdkit)', 'met'];
    const rows = WORKLOADS.map((w) => {
      const m = ALL_PEERS.map((p) => samples.median(`${w.name}\0${p.name}`));
      const vsKit = m[0] / m[ALL_PEERS.indexOf(NBDKIT_FILE)];
      return [`${w.name} [${w.unit}]`, ...m.map(formatNumber), formatRatio(vsKit), formatRatio(m[0] / m[2]), describeTarget(w.target), verdict(vsKit, w.target)];
    });
    printTable(`Source export vs peers (${SIZE / 2 ** 20} MiB image, medians of ${ROUNDS} interleaved rounds)`, header, rows, [
      `${OURS.name} serves the unsealed source through the remap engine; all servers on unix sockets, page-cached images; each server is warmed by one untimed sequential read.`,
      '4K random writes are bound by the page cache and swing widely between runs: compare within a run only.',
    ]);
  },
};
