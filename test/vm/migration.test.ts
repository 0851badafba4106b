/**
 * Kernel end-to-end migrations (issue 5): the Linux nbd client in a QEMU VM attaches
 * `source` and `destination` of `nbd-remapper serve` running on the host, and does a
 * real file-level migration (test/vm/scenarios/relayout.sh): old MBR + ext4 →
 * new GPT with ext4 + xfs, copied with cp -a. The host then runs finish and checks
 * the image itself (partition table, e2fsck -fn, xfs_repair -n, debugfs rdump of the
 * ext4 files), and a second short VM (scenarios/verify-layout.sh) mounts the final
 * disk read-only and checks every file on both filesystems.
 *
 * Each scenario prints its wall time, peak held RAM and spill count.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scratchDir } from '../helpers/scratch.js';
import {
  buildOldDisk,
  destinationViewOf,
  ext4Clean,
  ext4Manifest,
  extractRange,
  makeFileTree,
  manifestText,
  MiB,
  readPartitionTable,
  rotationMap,
  writeMap,
  xfsClean,
  type FileTree,
  type MapExtent,
} from './migration-fixtures.js';
import { RemapperServer, startPlainServer, type RemapStatus } from './remapper-server.js';
import { assertVmPassed, describeVmRun, prepareVm, runVmScenario, type VmForward, type VmScenarioResult } from './vm.js';

const NBD_PORT = 10809;
const CONTROL_PORT = 80;
const BUILD_TIMEOUT_MS = 5 * 60_000;
const COPY_VM_TIMEOUT_MS = 480_000;
const VERIFY_VM_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 15 * 60_000;
const SECTOR = 512;

const scenario = (name: string): string => readFileSync(new URL(`./scenarios/${name}`, import.meta.url), 'utf8');
const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)} MiB`;

/** The new layout, in destination bytes: partition 1 gets ext4 and the files of part "a", partition 2 xfs and part "b". */
interface NewLayout {
  p1: { start: number; size: number };
  p2: { start: number; size: number };
}

interface RelayoutCase {
  name: string;
  diskSize: number;
  oldPartition: { start: number; size: number };
  /** Bytes of files per part: "a" goes to the new ext4, "b" to the new xfs. */
  files: { a: number; b: number };
  layout: NewLayout;
  /** Destination → disk; identity when absent. */
  map?: MapExtent[];
  cache?: string;
  /** Copy batches: each is cp -a of /mnt/old/<src> into <destDir>. */
  batches: Array<[src: string, destDir: string]>;
  readback: boolean;
  /** Assert that held data spilled (a cache far below the overlap). */
  expectSpills?: boolean;
}

function sfdiskScript(layout: NewLayout): string {
  const line = (p: { start: number; size: number }, name: string): string => `start=${p.start / SECTOR}, size=${p.size / SECTOR}, type=L, name=${name}\n`;
  return `label: gpt\n${line(layout.p1, 'newext4')}${line(layout.p2, 'newxfs')}`;
}

/** Manifest of tree part `part`, as seen from the new filesystem's root (where cp -a put the directory). */
function rootedManifest(tree: FileTree, part: string): string {
  const rooted = new Map([...tree.manifests[part]].map(([path, sum]) => [`./${part}/${path.slice(2)}`, sum]));
  return manifestText(rooted);
}

function params(values: Record<string, string | number>): string {
  return Object.entries(values)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? v : `'${v}'`}\n`)
    .join('');
}

function printStatus(label: string, status: RemapStatus): void {
  console.info(`${label}: ${JSON.stringify(status)}`);
}

function logVm(label: string, result: VmScenarioResult): void {
  console.info(`${label}: QEMU wall ${(result.wallMs / 1000).toFixed(1)} s (boot ${result.bootSeconds ?? '?'} s, scenario ${result.scenarioSeconds ?? '?'} s)`);
}

/** The steps of the copy VM with their guest uptimes, for the log. */
function stepTimes(result: VmScenarioResult): string {
  return [...result.console.matchAll(/^VM-STEP \[([\d.]+)s\] (.*)$/gm)].map((m) => `  ${m[1].padStart(7)} s  ${m[2]}`).join('\n');
}

describe('kernel end-to-end migrations in a QEMU VM', () => {
  beforeAll(async () => {
    await prepareVm();
  }, BUILD_TIMEOUT_MS);

  const scratches: Array<ReturnType<typeof scratchDir>> = [];
  afterAll(() => {
    if (process.env.VM_KEEP_SCRATCH === '1') {
      console.info(`kept scratch directories: ${scratches.map((s) => s.path).join(' ')}`);
      return;
    }
    for (const s of scratches) s.cleanup();
  });

  async function runRelayout(c: RelayoutCase): Promise<void> {
    const started = performance.now();
    const dir = scratchDir(`nbd-remapper-vm-${c.name}-`);
    scratches.push(dir);
    const disk = dir.file('disk.img');
    const control = dir.file('control.sock');

    // ---- the old disk: MBR + ext4 holding the files
    const tree = makeFileTree(dir.file('tree'), c.files);
    await buildOldDisk(disk, dir.path, { size: c.diskSize, partStart: c.oldPartition.start, partSize: c.oldPartition.size, contentDir: tree.root });
    const mapFile = c.map ? dir.file('map.json') : undefined;
    if (mapFile) writeMap(mapFile, c.map!);
    const prepared = performance.now();

    // ---- the copy, in the VM
    const server = await RemapperServer.start({ disk, control, map: mapFile, cache: c.cache });
    console.info(`${c.name}: ${server.description}`);
    server.startPolling();
    const forwards: VmForward[] = [
      { guestPort: NBD_PORT, hostTarget: `tcp:127.0.0.1:${server.port}` },
      { guestPort: CONTROL_PORT, hostTarget: `unix:${control}` },
    ];
    let copy: VmScenarioResult;
    let afterCopy: RemapStatus;
    let finishOut: string;
    let finished: RemapStatus;
    let serverExit: number | null;
    try {
      copy = await runVmScenario({
        scenarioScript: scenario('relayout.sh'),
        forwards,
        timeoutMs: COPY_VM_TIMEOUT_MS,
        extraFiles: {
          'params.sh': params({ NBD_PORT, CONTROL_PORT, READBACK: c.readback ? 1 : 0 }),
          'new-table.sfdisk': sfdiskScript(c.layout),
          'batches.txt': c.batches.map(([src, to]) => `${src} ${to}\n`).join(''),
          'manifest-1.sha256': rootedManifest(tree, 'a'),
          'manifest-2.sha256': rootedManifest(tree, 'b'),
        },
      });
      logVm(`${c.name} copy VM`, copy);
      console.info(`${c.name} copy VM steps:\n${stepTimes(copy)}`);
      server.stopPolling();
      afterCopy = await server.status();
      printStatus(`${c.name} status after the copy`, afterCopy);
      if (!copy.passed) throw new Error(`${describeVmRun(copy)}\n----- server log -----\n${server.log()}`);
      expect(copy.reports.old_partition_bytes, 'the guest sees the old partition at another size').toBe(String(c.oldPartition.size));

      // ---- finish on the host, with the CLI
      const fin = await server.finishWithCli();
      finishOut = fin.stdout + fin.stderr;
      console.info(`${c.name} finish (exit ${fin.code}):\n${finishOut.split('\n').slice(-4).join('\n')}`);
      expect(fin.code, `nbd-remapper finish failed:\n${finishOut}\n----- server log -----\n${server.log()}`).toBe(0);
      finished = await server.status();
      printStatus(`${c.name} status after finish`, finished);
    } finally {
      serverExit = await server.stop();
    }
    expect(serverExit, `the server did not exit cleanly:\n${server.log()}`).toBe(0);
    expect(finished.phase).toBe('finished');
    expect(afterCopy.enospc, `writes failed with ENOSPC:\n${server.log()}`).toBe(0);
    if (c.expectSpills) {
      expect(Math.max(afterCopy.spilled, server.peaks.spilled), `no held data spilled with --cache ${c.cache}`).toBeGreaterThan(0);
    }
    const copied = performance.now();

    // ---- host checks of the image
    let view = disk;
    if (c.map) {
      view = dir.file('view.img');
      destinationViewOf(disk, c.map, view);
    }
    const table = await readPartitionTable(view);
    expect(table.label).toBe('gpt');
    expect(table.partitions.map((p) => ({ start: p.start, size: p.size }))).toEqual([c.layout.p1, c.layout.p2]);
    const p1 = dir.file('p1.img');
    const p2 = dir.file('p2.img');
    await extractRange(view, c.layout.p1.start, c.layout.p1.size, p1);
    await extractRange(view, c.layout.p2.start, c.layout.p2.size, p2);
    await ext4Clean(p1);
    await xfsClean(p2);
    const ext4Files = await ext4Manifest(p1, '/a', dir.path);
    expect(ext4Files.size).toBe(tree.manifests.a.size);
    for (const [path, sum] of tree.manifests.a) expect(ext4Files.get(path), `ext4 file ${path} (debugfs rdump)`).toBe(sum);

    // ---- a second VM reads both filesystems of the final disk
    const plain = await startPlainServer(view, dir.file('verify.sock'));
    let verify: VmScenarioResult;
    try {
      verify = await runVmScenario({
        scenarioScript: scenario('verify-layout.sh'),
        forwards: [{ guestPort: NBD_PORT, hostTarget: `tcp:127.0.0.1:${plain.port}` }],
        timeoutMs: VERIFY_VM_TIMEOUT_MS,
        extraFiles: {
          'params.sh': params({ NBD_PORT }),
          'manifest-1.sha256': rootedManifest(tree, 'a'),
          'manifest-2.sha256': rootedManifest(tree, 'b'),
        },
      });
    } finally {
      await plain.stop();
    }
    logVm(`${c.name} verify VM`, verify);
    assertVmPassed(verify);
    expect(verify.reports.files_1).toBe(String(tree.manifests.a.size));
    expect(verify.reports.files_2).toBe(String(tree.manifests.b.size));

    const done = performance.now();
    console.info(
      `${c.name} FIGURES: wall ${((done - started) / 1000).toFixed(1)} s (fixtures ${((prepared - started) / 1000).toFixed(1)} s, ` +
        `copy VM + finish ${((copied - prepared) / 1000).toFixed(1)} s, checks + verify VM ${((done - copied) / 1000).toFixed(1)} s); ` +
        `files ${mib(tree.bytes.a + tree.bytes.b)} (${tree.manifests.a.size + tree.manifests.b.size} files); ` +
        `cache ${c.cache ?? 'default'}; peak held RAM ${mib(server.peaks.heldInRamBytes)} (peak cache use ${mib(server.peaks.cacheBytes)}); ` +
        `spilled after copy ${afterCopy.spilled} blocks (peak ${server.peaks.spilled}); ENOSPC ${afterCopy.enospc}; ` +
        `status samples ${server.peaks.samples}`,
    );
  }

  // Old: MBR, ext4 at 1 MiB..421 MiB. New: GPT, ext4 at 1 MiB (200 MiB) and xfs at 201 MiB (320 MiB): the new
  // partitions lie over the old one, so most writes land on blocks whose old data is still unread.
  const base = {
    diskSize: 640 * MiB,
    oldPartition: { start: 1 * MiB, size: 420 * MiB },
    layout: { p1: { start: 1 * MiB, size: 200 * MiB }, p2: { start: 201 * MiB, size: 320 * MiB } },
    batches: [
      ['a', '/mnt/new1'],
      ['b', '/mnt/new2'],
    ] as Array<[string, string]>,
  };

  it(
    're-layout: MBR + ext4 → GPT with ext4 + xfs on the identity map, cp -a, finish; image verified',
    async () => {
      await runRelayout({ ...base, name: 'relayout', files: { a: 48 * MiB, b: 64 * MiB }, readback: false });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    'heavy overlap: the whole disk rotated by 203 MiB under a 16 MiB cache, so held data must spill',
    async () => {
      const map = rotationMap(640 * MiB, 203 * MiB);
      await runRelayout({ ...base, name: 'overlap', files: { a: 48 * MiB, b: 64 * MiB }, map, cache: '16M', readback: true, expectSpills: true });
    },
    TEST_TIMEOUT_MS,
  );
});
