/**
 * End to end with the Linux kernel's NBD client: a QEMU VM (test/vm/README.md)
 * attaches the host server's `source` export, reads it, writes to it and puts an
 * ext4 filesystem on it; the host then checks the image byte by byte.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { makeTestCertificates } from '../helpers/tls-certificates.js';
import { chooseServerKind, startOurServer, startQemuNbd, type HostNbdServer } from './host-servers.js';
import { assertVmPassed, describeVmRun, prepareVm, runVmScenario, type VmScenarioResult } from './vm.js';

const MiB = 1024 * 1024;
const NBD_PORT = 10809;
// The first build downloads the kernel package (~70 MB) and unpacks it; later ones hit the cache.
const BUILD_TIMEOUT_MS = 5 * 60_000;
// Boot takes a few seconds under TCG; these are ceilings for a loaded machine, not expectations.
const VM_TIMEOUT_MS = 150_000;
const TEST_TIMEOUT_MS = VM_TIMEOUT_MS + 30_000;

const sha256 = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex');
const scenario = (name: string): string => readFileSync(new URL(`./scenarios/${name}`, import.meta.url), 'utf8');

function logTimes(label: string, result: VmScenarioResult): void {
  console.info(
    `${label}: scenario ${result.scenarioSeconds ?? '?'} s in the guest, boot ${result.bootSeconds ?? '?'} s, ` +
      `QEMU wall ${(result.wallMs / 1000).toFixed(1)} s`,
  );
}

/** Runs a scenario with the guest's NBD port forwarded to `server`, then stops the server: it flushes on the way out, so the image is final once it has exited. */
async function runAgainst(server: HostNbdServer, scenarioScript: string, extraFiles: Record<string, Buffer>): Promise<{ result: VmScenarioResult; serverExit: number | null }> {
  const running = runVmScenario({ scenarioScript, forwards: [{ guestPort: NBD_PORT, hostTarget: server.target }], timeoutMs: VM_TIMEOUT_MS, extraFiles });
  const [outcome] = await Promise.allSettled([running]);
  const serverExit = await server.stop();
  if (outcome.status === 'rejected') throw outcome.reason;
  return { result: outcome.value, serverExit };
}

describe('the kernel nbd client in a QEMU VM', () => {
  const dir = scratchDir('nbd-remapper-vm-test-');

  beforeAll(async () => {
    // A missing tool or a failed build fails every test here, with the package to install.
    await prepareVm();
  }, BUILD_TIMEOUT_MS);
  afterAll(() => dir.cleanup());

  it('reports a failing scenario as failed: console verdict, exit code and reports agree', async () => {
    const blob = randomBytes(300_000);
    const result = await runVmScenario({
      scenarioScript: [
        '. /etc/vm-lib.sh',
        'report greeting "$(cat $VM_FILES/greeting.txt)"',
        'report blob "$(sha256_of $VM_FILES/blob.bin)"',
        'exit 7',
      ].join('\n'),
      forwards: [],
      timeoutMs: VM_TIMEOUT_MS,
      extraFiles: { 'greeting.txt': 'hello from the host', 'blob.bin': blob },
    });
    logTimes('failing scenario', result);
    const context = describeVmRun(result);
    expect(result.timedOut, context).toBe(false);
    expect(result.marker, context).toBe('FAIL');
    expect(result.guestStatus, context).toBe(7);
    expect(result.exitCode, context).toBe(15);
    expect(result.passed, context).toBe(false);
    expect(result.reports, context).toEqual({ greeting: 'hello from the host', blob: sha256(blob) });
  }, TEST_TIMEOUT_MS);

  it('kills a scenario that overruns its time limit and does not pass it', async () => {
    const result = await runVmScenario({ scenarioScript: 'echo started; sleep 600', forwards: [], timeoutMs: 8_000 });
    const context = describeVmRun(result);
    expect(result.timedOut, context).toBe(true);
    expect(result.exitCode, context).toBeNull();
    expect(result.marker, context).toBeNull();
    expect(result.passed, context).toBe(false);
  }, TEST_TIMEOUT_MS);

  it('attaches source, reads it whole, writes a payload and an ext4 filesystem the host can verify', async () => {
    const size = 64 * MiB;
    const disk = dir.file('disk.img');
    const original = randomImage(disk, size);
    // A multiple of 64 KiB, as the scenario's dd needs.
    const payload = randomBytes(4 * MiB);

    const kind = chooseServerKind();
    const server: HostNbdServer = kind === 'ours' ? await startOurServer(disk) : await startQemuNbd(disk, dir.file('nbd.sock'));
    console.info(`kernel-client: serving with ${server.description}`);
    const { result, serverExit } = await runAgainst(server, scenario('kernel-client.sh'), { 'payload.bin': payload });
    logTimes('kernel-client', result);
    assertVmPassed(result);
    expect(serverExit, `${server.description} did not exit cleanly`).toBe(0);

    const context = describeVmRun(result);
    expect(result.reports.size, context).toBe(String(size));
    expect(result.reports.sha256_before, `the guest read something else than the image\n${context}`).toBe(sha256(original));

    const image = readFileSync(disk);
    expect(image.length).toBe(size);
    expect(sha256(image), 'the guest saw a different device than the image the host has').toBe(result.reports.sha256_after);
    expect(image.subarray(size - payload.length).equals(payload), 'the payload is not in the last bytes of the image').toBe(true);

    const fsck = await runTool('e2fsck', ['-fn', disk]);
    expect(fsck.code, `e2fsck -fn:\n${fsck.stdout}${fsck.stderr}`).toBe(0);

    const files = Object.entries(result.reports).filter(([key]) => key.startsWith('file:'));
    expect(files.map(([key]) => key).sort()).toEqual(
      ['file:/data/note.txt', 'file:/data/payload.bin', 'file:/data/random-1', 'file:/data/random-2', 'file:/data/random-3'],
    );
    expect(result.reports['file:/data/payload.bin']).toBe(sha256(payload));
    for (const [key, guestSum] of files) {
      const path = key.slice('file:'.length);
      const out = dir.file(`dumped-${path.replace(/\//g, '_')}`);
      const dump = await runTool('debugfs', ['-R', `dump ${path} ${out}`, disk]);
      expect(dump.code, dump.stderr).toBe(0);
      expect(sha256(readFileSync(out)), `${path} read from the image on the host`).toBe(guestSum);
    }
  }, TEST_TIMEOUT_MS);

  it('attaches source over TLS (nbd-client -x checks the certificate) and reads and writes through it', async () => {
    const size = 16 * MiB;
    const disk = dir.file('tls-disk.img');
    const original = randomImage(disk, size);
    const payload = randomBytes(MiB);
    const certs = await makeTestCertificates(dir.file('pki'));
    const server = await startOurServer(disk, ['--tls-certificates', certs.server]);
    const { result, serverExit } = await runAgainst(server, scenario('kernel-client-tls.sh'), {
      'payload.bin': payload,
      'ca-cert.pem': readFileSync(join(certs.client, 'ca-cert.pem')),
    });
    logTimes('kernel-client over TLS', result);
    assertVmPassed(result);
    expect(serverExit, 'the server did not exit cleanly').toBe(0);
    const context = describeVmRun(result);
    expect(result.reports.sha256_before, `the guest read something else than the image\n${context}`).toBe(sha256(original));
    const image = readFileSync(disk);
    expect(image.subarray(size - payload.length).equals(payload), 'the payload is not in the last bytes of the image').toBe(true);
    expect(sha256(image), 'the guest saw a different device than the image the host has').toBe(result.reports.sha256_after);
  }, TEST_TIMEOUT_MS);
});
