/**
 * Runs a shell scenario inside a QEMU VM (TCG) whose Debian kernel has the real
 * nbd driver, so tests can drive the kernel `nbd-client` against servers on the
 * host. See test/vm/README.md for the moving parts and guest/init for the guest side.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, appendFileSync, constants, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newcArchive, type ArchiveEntry } from './newc-archive.js';

/** Guest-side address of every forward; each forward answers on its own guestPort. */
export const GUEST_FORWARD_ADDRESS = '10.0.2.100';

/** Where a guest connection to GUEST_FORWARD_ADDRESS:guestPort ends up on the host. */
export type HostTarget = `tcp:${string}:${number}` | `unix:${string}`;

export interface VmForward {
  guestPort: number;
  hostTarget: HostTarget;
}

/** A file handed to the guest, which finds it as /vm/files/<name>: text, bytes, or a host file. It lives in guest RAM. */
export type VmFile = string | Uint8Array | { hostPath: string };

export interface VmScenarioOptions {
  /** A busybox-ash script; it runs under `sh -e` and usually starts with `. /etc/vm-lib.sh`. */
  scenarioScript: string;
  forwards: readonly VmForward[];
  /** QEMU is killed (SIGKILL) when this runs out; the result then has timedOut = true. */
  timeoutMs: number;
  extraFiles?: Readonly<Record<string, VmFile>>;
  /** Guest RAM; 512 MiB unless said otherwise. */
  memoryMiB?: number;
  /** Live console output, e.g. for watching a scenario while writing it (VM_CONSOLE=1 sends it to stderr). */
  onConsole?: (text: string) => void;
}

export interface VmScenarioResult {
  /** QEMU's exit status; null when it was killed. */
  exitCode: number | null;
  /** The scenario's status as the guest wrote it to isa-debug-exit (exit code 2n+1); null without one. */
  guestStatus: number | null;
  /** The verdict line the guest's init printed with this run's token. */
  marker: 'PASS' | 'FAIL' | null;
  /** True only when the console marker says PASS and the exit code says status 0, before the timeout. */
  passed: boolean;
  timedOut: boolean;
  /** The serial console (kernel warnings, init and scenario output), with \n line ends. */
  console: string;
  /** QEMU's own stderr. */
  qemuStderr: string;
  /** What the socat bridges of the forwards logged (connection errors). */
  bridgeLog: string;
  /** Values the scenario passed with `report KEY VALUE`. */
  reports: Record<string, string>;
  /** Host wall time from QEMU's start to its exit. */
  wallMs: number;
  /** Guest uptime when the scenario started, and the scenario's own duration, as the guest measured them. */
  bootSeconds: number | null;
  scenarioSeconds: number | null;
}

export interface VmImage {
  dir: string;
  vmlinux: string;
  initramfs: string;
  manifest: string;
}

const HERE = fileURLToPath(new URL('.', import.meta.url));
const BUILD_SCRIPT = join(HERE, 'build-image.sh');
const BUILD_TIMEOUT_MS = 10 * 60_000;
/** Status guest/init uses when the harness, not the scenario, failed. */
export const GUEST_SETUP_FAILED = 125;

/** Every host program the VM tests run (directly or through build-image.sh), with its Debian package. */
export const VM_HOST_TOOLS: Readonly<Record<string, string>> = {
  'qemu-system-x86_64': 'qemu-system-x86',
  socat: 'socat',
  bash: 'bash',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  'dpkg-query': 'dpkg',
  depmod: 'kmod',
  modprobe: 'kmod',
  cpio: 'cpio',
  xz: 'xz-utils',
  ldd: 'libc-bin',
  flock: 'util-linux',
  sha256sum: 'coreutils',
  busybox: 'busybox-static',
  'nbd-client': 'nbd-client',
  mke2fs: 'e2fsprogs',
  e2fsck: 'e2fsprogs',
  debugfs: 'e2fsprogs',
  'mkfs.xfs': 'xfsprogs',
  xfs_io: 'xfsprogs',
  xfs_repair: 'xfsprogs',
  sfdisk: 'fdisk',
  fstrim: 'util-linux',
  dmsetup: 'dmsetup',
  truncate: 'coreutils',
  dd: 'coreutils',
};

/** The PATH the tools are looked up in: sbin directories are often missing from a user's PATH. */
const TOOL_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin', ...(process.env.PATH ?? '').split(delimiter)];

function findTool(name: string): string | undefined {
  for (const dir of TOOL_PATH) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Names the missing tools and the apt-get line that installs them; empty when all are there. */
export function missingVmTools(tools: Readonly<Record<string, string>> = VM_HOST_TOOLS): string {
  const missing = Object.entries(tools).filter(([tool]) => findTool(tool) === undefined);
  if (missing.length === 0) return '';
  const packages = [...new Set(missing.map(([, pkg]) => pkg))].sort();
  return (
    `the VM tests need ${missing.map(([tool, pkg]) => `${tool} (package ${pkg})`).join(', ')}; ` +
    `install with: apt-get install -y --no-install-recommends ${packages.join(' ')}`
  );
}

let imagePromise: Promise<VmImage> | undefined;

/**
 * Checks the host tools, then builds the kernel and initramfs (cached under
 * test/vm/.build; about a second when nothing changed). Throws with the
 * package names when a tool is missing, so the calling test fails, not skips.
 */
export function prepareVm(): Promise<VmImage> {
  imagePromise ??= (async () => {
    const missing = missingVmTools();
    if (missing) throw new Error(missing);
    const { code, stdout, stderr } = await runCollecting('bash', [BUILD_SCRIPT], BUILD_TIMEOUT_MS);
    const dir = stdout.trim().split('\n').pop() ?? '';
    if (code !== 0 || !isAbsolute(dir)) {
      throw new Error(`test/vm/build-image.sh failed (exit ${code}):\n${stderr}${stdout}`);
    }
    const image: VmImage = {
      dir,
      vmlinux: join(dir, 'vmlinux'),
      initramfs: join(dir, 'initramfs.cpio'),
      manifest: join(dir, 'manifest.txt'),
    };
    for (const file of [image.vmlinux, image.initramfs]) {
      if (!existsSync(file)) throw new Error(`build-image.sh reported ${dir} but ${file} is missing`);
    }
    return image;
  })();
  // A failed build is not cached: the next caller tries again.
  imagePromise.catch(() => (imagePromise = undefined));
  return imagePromise;
}

function runCollecting(command: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// Characters that survive QEMU's option parser (',' separates options), socat's
// address syntax (',' and ':' separate fields) and slirp's command splitting (spaces).
const SAFE_PATH = /^\/[A-Za-z0-9._\/+-]+$/;
const FILE_NAME = /^[A-Za-z0-9._-]{1,100}$/;
// Forwards reach this machine only (house rule: tests network on loopback or unix sockets).
const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost']);

function socatAddress(target: HostTarget): string {
  if (target.startsWith('unix:')) {
    const path = target.slice('unix:'.length);
    if (!SAFE_PATH.test(path)) throw new Error(`unix socket path '${path}' must be absolute and use only [A-Za-z0-9._/+-]`);
    // sockaddr_un holds 108 bytes including the terminating NUL.
    if (Buffer.byteLength(path) > 107) throw new Error(`unix socket path '${path}' is longer than 107 bytes`);
    return `UNIX-CONNECT:${path}`;
  }
  const match = /^tcp:([^:]+):(\d+)$/.exec(target);
  if (!match || !LOCAL_HOSTS.has(match[1]) || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`host target '${target}' must be tcp:127.0.0.1:PORT or unix:/absolute/path`);
  }
  return `TCP:${match[1]}:${match[2]}`;
}

/**
 * socat's transfer buffer. With its default (8 KiB) every NBD reply longer than that
 * stalls ~50 ms on its way into the guest (slirp holds the short tail of each chunk
 * until the guest ACKs), so a 16 KiB read takes 50 ms instead of 5: copying a tree of
 * small files ran ten times slower. One buffer holds the largest request the kernel
 * client sends (128 KiB) with its header.
 */
const BRIDGE_BUFFER_BYTES = 256 * 1024;

/**
 * -netdev user with no way out except the forwards; slirp spawns one socat per
 * guest connection. slirp hands socat the guest connection as stderr too, so
 * socat's complaints go to bridgeLog instead of into the guest's NBD stream.
 */
export function netdevOption(forwards: readonly VmForward[], bridgeLog: string): string {
  if (!SAFE_PATH.test(bridgeLog)) throw new Error(`bridge log path '${bridgeLog}' must use only [A-Za-z0-9._/+-]`);
  const ports = new Set<number>();
  const parts = ['user', 'id=net0', 'restrict=on'];
  for (const { guestPort, hostTarget } of forwards) {
    if (!Number.isInteger(guestPort) || guestPort < 1 || guestPort > 65535) throw new Error(`guestPort ${guestPort} is not a TCP port`);
    if (ports.has(guestPort)) throw new Error(`guestPort ${guestPort} is forwarded twice`);
    ports.add(guestPort);
    parts.push(`guestfwd=tcp:${GUEST_FORWARD_ADDRESS}:${guestPort}-cmd:socat -b ${BRIDGE_BUFFER_BYTES} -lf ${bridgeLog} - ${socatAddress(hostTarget)}`);
  }
  return parts.join(',');
}

const liveQemus = new Set<ChildProcess>();
// A test worker that dies mid-scenario must not leave a VM spinning a core.
process.once('exit', () => {
  for (const child of liveQemus) child.kill('SIGKILL');
});

/** Boots the VM, runs the scenario, and resolves when QEMU has exited (or was killed at the timeout). */
export async function runVmScenario(options: VmScenarioOptions): Promise<VmScenarioResult> {
  const image = await prepareVm();
  const token = randomBytes(8).toString('hex');
  const inputs = mkdtempSync(join(tmpdir(), 'nbd-remapper-vm-'));
  try {
    // QEMU's option parser would split a path with a comma in it.
    if (!SAFE_PATH.test(inputs)) throw new Error(`temporary directory '${inputs}' must use only [A-Za-z0-9._/+-] (set TMPDIR)`);
    const fwCfg: string[] = [];
    const addFile = (name: string, path: string): void => {
      fwCfg.push('-fw_cfg', `name=opt/vm/${name},file=${path}`);
    };
    writeFileSync(join(inputs, 'token'), token);
    addFile('token', join(inputs, 'token'));
    writeFileSync(join(inputs, 'scenario.sh'), options.scenarioScript);
    addFile('scenario', join(inputs, 'scenario.sh'));
    const bridgeLog = join(inputs, 'socat.log');
    const netdev = netdevOption(options.forwards, bridgeLog);
    const initrd = withExtraFiles(image.initramfs, options.extraFiles ?? {}, inputs);

    const args = [
      '-machine', 'q35', '-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', String(options.memoryMiB ?? 512),
      '-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
      '-kernel', image.vmlinux, '-initrd', initrd,
      '-append', 'console=ttyS0 quiet panic=-1',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=4',
      '-netdev', netdev,
      // romfile= : no PXE option ROM; nothing boots from the network and the ROM package may be absent.
      '-device', 'virtio-net-pci,netdev=net0,romfile=',
      ...fwCfg,
    ];
    const result = await runQemu(args, token, options);
    result.bridgeLog = existsSync(bridgeLog) ? readFileSync(bridgeLog, 'utf8') : '';
    return result;
  } finally {
    rmSync(inputs, { recursive: true, force: true });
  }
}

/**
 * The initramfs to boot: the cached one, or a copy with an archive of the extra
 * files appended. Not fw_cfg: the guest reads fw_cfg files through sysfs a page
 * at a time, each read re-skipping from the start, so megabytes take minutes.
 */
function withExtraFiles(initramfs: string, extraFiles: Readonly<Record<string, VmFile>>, scratch: string): string {
  const names = Object.keys(extraFiles);
  if (names.length === 0) return initramfs;
  const entries: ArchiveEntry[] = [{ path: 'vm' }, { path: 'vm/files' }];
  for (const name of names) {
    if (!FILE_NAME.test(name)) throw new Error(`extra file name '${name}' must match ${FILE_NAME}`);
    const file = extraFiles[name];
    const content = typeof file === 'string' ? Buffer.from(file) : file instanceof Uint8Array ? file : readFileSync(file.hostPath);
    entries.push({ path: `vm/files/${name}`, content });
  }
  const combined = join(scratch, 'initramfs.cpio');
  copyFileSync(initramfs, combined);
  appendFileSync(combined, newcArchive(entries));
  return combined;
}

function runQemu(args: string[], token: string, options: VmScenarioOptions): Promise<VmScenarioResult> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(findTool('qemu-system-x86_64') ?? 'qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    liveQemus.add(child);
    let consoleText = '';
    let qemuStderr = '';
    let timedOut = false;
    const watch = options.onConsole ?? (process.env.VM_CONSOLE === '1' ? (text: string) => process.stderr.write(text) : undefined);
    // setEncoding keeps a character split across chunks whole.
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      const text = chunk.replace(/\r/g, '');
      consoleText += text;
      watch?.(text);
    });
    child.stderr!.on('data', (chunk: string) => (qemuStderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      liveQemus.delete(child);
      reject(new Error(`cannot start qemu-system-x86_64: ${err.message} (install qemu-system-x86)`));
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      liveQemus.delete(child);
      resolve(interpretRun(consoleText, qemuStderr, code, timedOut, token, performance.now() - started));
    });
  });
}

/** Reads the verdict from the console and the exit code; exported for the harness's own checks. */
export function interpretRun(
  consoleText: string,
  qemuStderr: string,
  exitCode: number | null,
  timedOut: boolean,
  token: string,
  wallMs: number,
): VmScenarioResult {
  let marker: 'PASS' | 'FAIL' | null = null;
  for (const m of consoleText.matchAll(/VM-RESULT (\S+) (PASS|FAIL)/g)) {
    if (m[1] === token) marker = m[2] as 'PASS' | 'FAIL';
  }
  // isa-debug-exit turns the byte n into exit status 2n+1; an even status is QEMU's own exit.
  const guestStatus = exitCode !== null && exitCode % 2 === 1 ? (exitCode - 1) / 2 : null;
  const reports: Record<string, string> = {};
  for (const m of consoleText.matchAll(/^VM-REPORT ([^=\s]+)=(.*)$/gm)) reports[m[1]] = m[2];
  const seconds = (pattern: RegExp): number | null => {
    const m = pattern.exec(consoleText);
    return m ? Number(m[1]) : null;
  };
  return {
    exitCode,
    guestStatus,
    marker,
    passed: !timedOut && marker === 'PASS' && guestStatus === 0,
    timedOut,
    console: consoleText,
    qemuStderr,
    bridgeLog: '',
    reports,
    wallMs,
    bootSeconds: seconds(/VM-READY boot=([\d.]+)s/),
    scenarioSeconds: seconds(/VM-TIME scenario=([\d.]+)s/),
  };
}

/** Why a run did not pass, followed by the whole console: what a failing test should show. */
export function describeVmRun(result: VmScenarioResult): string {
  const why = result.timedOut
    ? 'QEMU was killed at the timeout'
    : result.marker === null && result.guestStatus === null
      ? `the guest gave no verdict (QEMU exit ${result.exitCode}): it crashed, panicked or powered off`
      : result.marker === 'PASS' && result.guestStatus === 0
        ? 'the scenario passed'
        : `scenario verdict: console ${result.marker ?? 'none'}, exit code ${result.exitCode} (guest status ${result.guestStatus ?? 'none'})` +
          (result.guestStatus === GUEST_SETUP_FAILED ? ' — the harness could not set the guest up' : '');
  return [
    `VM run: ${why}; wall ${(result.wallMs / 1000).toFixed(1)} s`,
    '----- guest console -----',
    result.console.trimEnd(),
    '----- qemu stderr -----',
    result.qemuStderr.trimEnd(),
    '----- socat bridges -----',
    result.bridgeLog.trimEnd(),
    '-------------------------',
  ].join('\n');
}

/** Throws with the whole console unless the run passed. */
export function assertVmPassed(result: VmScenarioResult): void {
  if (!result.passed) throw new Error(describeVmRun(result));
}
