import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { mustRun, runTool } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { CLI, startServerProcess } from '../helpers/server-process.js';
import { makeTestCertificates, type TestCertificates } from '../helpers/tls-certificates.js';

/**
 * TLS through NBD_OPT_STARTTLS (`serve --tls-certificates`), with libnbd's
 * clients (nbdinfo, nbdcopy) checking the server's certificate: over a unix
 * socket and over TCP, where the host name is checked too. The data path
 * matters as much as the handshake: reads of a sealed source and the
 * page-cache replies of an unsealed one must go through the encryption
 * (a reply sent from the page cache would break the TLS stream).
 */
const MiB = 1024 * 1024;
const cleanup = useCleanups();

const withCerts = (uri: string, dir: string): string => `${uri}${uri.includes('?') ? '&' : '?'}tls-certificates=${dir}`;

/** A scratch directory (removed after the test) with a test CA's certificates and a disk image of `size` random bytes. */
async function scene(prefix: string, size: number): Promise<{ dir: ReturnType<typeof scratchDir>; certs: TestCertificates; disk: string; data: Buffer }> {
  const dir = scratchDir(prefix);
  cleanup(() => dir.cleanup());
  const certs = await makeTestCertificates(dir.file('pki'));
  const disk = dir.file('disk.img');
  return { dir, certs, disk, data: randomImage(disk, size) };
}

it('TLS required: clients over unix and TCP read and write through it; a plaintext client is refused', async () => {
  const { dir, certs, disk } = await scene('nbd-remapper-tls-', 16 * MiB);
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--listen', '127.0.0.1:0', '--control', control, '--tls-certificates', certs.server]);
  cleanup(() => server.stop('SIGKILL'));
  expect(server.stdout()).toMatch(/^TLS required: certificate from /m);
  const unixSource = withCerts(server.uri('source', 'unix'), certs.client);
  const tcpSource = withCerts(server.uri('source', 'tcp'), certs.client);
  expect(unixSource).toMatch(/^nbds\+unix:/);
  expect(tcpSource).toMatch(/^nbds:\/\/127\.0\.0\.1:/);

  expect(await mustRun('nbdinfo', [tcpSource])).toMatch(/with TLS/);
  const plain = await runTool('nbdinfo', [server.uri('source', 'unix').replace('nbds+unix', 'nbd+unix')]);
  expect(plain.code).not.toBe(0);

  // Unsealed source: large reads would go from the page cache on a plain socket.
  const written = dir.file('written.img');
  const data = randomImage(written, 16 * MiB);
  await mustRun('nbdcopy', [written, unixSource]);
  const back = dir.file('back.img');
  await mustRun('nbdcopy', [tcpSource, back]);
  expect(readFileSync(back).equals(data)).toBe(true);

  await mustRun(process.execPath, [CLI, 'seal', '--control', control]);
  const sealedBack = dir.file('sealed-back.img');
  await mustRun('nbdcopy', [unixSource, sealedBack]);
  expect(readFileSync(sealedBack).equals(data)).toBe(true);

  const fresh = dir.file('fresh.img');
  const newData = randomBytes(16 * MiB);
  writeFileSync(fresh, newData);
  await mustRun('nbdcopy', ['--flush', fresh, withCerts(server.uri('destination', 'tcp'), certs.client)]);
  const destinationBack = dir.file('destination-back.img');
  await mustRun('nbdcopy', [withCerts(server.uri('destination', 'unix'), certs.client), destinationBack]);
  expect(readFileSync(destinationBack).equals(newData)).toBe(true);
  expect(await server.stop()).toBe(0);
}, 120_000);

it('a client that does not trust the certificate is refused, and one that does is served; --tls allow serves plaintext clients too', async () => {
  const { dir, certs, disk, data } = await scene('nbd-remapper-tls-allow-', 4 * MiB);
  const stranger = await makeTestCertificates(dir.file('other-pki'), 'some other CA');
  const server = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0', '--read-only', '--tls-certificates', certs.server, '--tls', 'allow']);
  cleanup(() => server.stop('SIGKILL'));
  expect(server.stdout()).toMatch(/^TLS offered: /m);
  const plainUri = server.uri('source');
  expect(plainUri).toMatch(/^nbd:\/\//);
  const secureUri = plainUri.replace(/^nbd:/, 'nbds:');

  const untrusted = await runTool('nbdinfo', [withCerts(secureUri, stranger.client)]);
  expect(untrusted.code).not.toBe(0);
  expect(untrusted.stderr).toMatch(/certificate|verif|TLS/i);
  expect(await mustRun('nbdinfo', [withCerts(secureUri, certs.client)])).toMatch(/with TLS/);
  expect(await mustRun('nbdinfo', [plainUri])).toMatch(/without TLS/);

  const back = dir.file('back.img');
  await mustRun('nbdcopy', [withCerts(secureUri, certs.client), back]);
  expect(readFileSync(back).equals(data)).toBe(true);
  expect(await server.stop()).toBe(0);
}, 120_000);

it('serve refuses TLS options it cannot honour, naming the fix', async () => {
  const dir = scratchDir('nbd-remapper-tls-refused-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  randomImage(disk, MiB);
  const withoutCerts = await runTool(process.execPath, [CLI, 'serve', '--disk', disk, '--socket', dir.file('a.sock'), '--control', dir.file('a.ctl'), '--tls', 'require']);
  expect(withoutCerts.code).toBe(2);
  expect(withoutCerts.stderr).toMatch(/--tls require needs the server's certificate[\s\S]*--tls-certificates DIR/);
  const empty = dir.file('empty');
  await mustRun('mkdir', [empty]);
  const missing = await runTool(process.execPath, [CLI, 'serve', '--disk', disk, '--socket', dir.file('b.sock'), '--control', dir.file('b.ctl'), '--tls-certificates', empty]);
  expect(missing.code).toBe(2);
  expect(missing.stderr).toMatch(/server-cert\.pem: no such file[\s\S]*server-key\.pem/);
  const peerWithoutTls = await runTool(process.execPath, [CLI, 'serve', '--disk', disk, '--socket', dir.file('c.sock'), '--control', dir.file('c.ctl'), '--tls-verify-peer']);
  expect(peerWithoutTls.code).toBe(2);
  expect(peerWithoutTls.stderr).toMatch(/--tls-verify-peer needs TLS[\s\S]*--tls-certificates DIR/);
}, 60_000);

/**
 * A raw client that gets through the greeting and NBD_OPT_STARTTLS's ACK, then
 * leaves the socket to the test: what it sends (or does not) instead of a TLS
 * handshake is the point.
 */
async function afterStartTls(socketPath: string): Promise<{ client: Socket; closed: Promise<void> }> {
  const client = connect(socketPath);
  const received: Buffer[] = [];
  client.on('data', (chunk: Buffer) => received.push(chunk));
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.on('error', () => undefined);
  const until = async (bytes: number): Promise<Buffer> => {
    for (let i = 0; i < 200 && Buffer.concat(received).length < bytes; i++) await new Promise((r) => setTimeout(r, 10));
    return Buffer.concat(received);
  };
  expect((await until(18)).subarray(0, 8).toString()).toBe('NBDMAGIC');
  // Client flags FIXED_NEWSTYLE | NO_ZEROES, then NBD_OPT_STARTTLS (5) with no data.
  const option = Buffer.alloc(16);
  option.write('IHAVEOPT', 0);
  option.writeUInt32BE(5, 8);
  client.write(Buffer.concat([Buffer.from([0, 0, 0, 3]), option]));
  const reply = (await until(18 + 20)).subarray(18, 38);
  expect(reply.readUInt32BE(8)).toBe(5);
  expect(reply.readUInt32BE(12)).toBe(1); // NBD_REP_ACK
  return { client, closed };
}

const closedWithin = (closed: Promise<void>, ms: number, what: string): Promise<unknown> =>
  Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error(what)), ms))]);

it('garbage instead of a TLS handshake after STARTTLS, or nothing at all, drops that client and harms no other (G8)', async () => {
  const { dir, certs, disk } = await scene('nbd-remapper-tls-garbage-', MiB);
  const socketPath = dir.file('nbd.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', socketPath, '--read-only', '--tls-certificates', certs.server, '--handshake-timeout', '2']);
  cleanup(() => server.stop('SIGKILL'));

  const garbage = await afterStartTls(socketPath);
  garbage.client.write(Buffer.from('this is not a TLS ClientHello\n'.repeat(64)));
  await closedWithin(garbage.closed, 10_000, 'the server kept a client that sent garbage for TLS');

  // The handshake timeout covers the TLS handshake: a client that goes quiet after STARTTLS is dropped too.
  const quiet = await afterStartTls(socketPath);
  await closedWithin(quiet.closed, 10_000, 'the server kept a client that went quiet inside the TLS handshake past --handshake-timeout');

  expect(await mustRun('nbdinfo', [withCerts(server.uri('source'), certs.client)])).toMatch(/with TLS/);
  expect(await server.stop()).toBe(0);
  const log = server.stderr() + server.stdout();
  expect(log).toMatch(/TLS failed, dropping the client/);
  expect(log).toMatch(/handshake not finished within 2000 ms, dropping the client/);
}, 60_000);

it("QEMU's TLS client (tls-creds-x509) writes and reads through it, over TCP and a unix socket", async () => {
  const { dir, certs, disk } = await scene('nbd-remapper-tls-qemu-', 4 * MiB);
  const socketPath = dir.file('nbd.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', socketPath, '--listen', '127.0.0.1:0', '--control', dir.file('control.sock'), '--tls-certificates', certs.server]);
  cleanup(() => server.stop('SIGKILL'));
  const port = /^nbds:\/\/127\.0\.0\.1:(\d+)\//.exec(server.uri('source', 'tcp'))?.[1];
  const creds = ['--object', `tls-creds-x509,id=tls0,dir=${certs.client},endpoint=client`];
  expect(await mustRun('qemu-img', ['info', ...creds, '--image-opts', `driver=nbd,host=127.0.0.1,port=${port},export=source,tls-creds=tls0`])).toMatch(/virtual size: 4 MiB/);
  const io = await mustRun('qemu-io', [
    ...creds,
    '--image-opts',
    `driver=nbd,path=${socketPath},export=source,tls-creds=tls0,tls-hostname=localhost`,
    '-c',
    'write -P 0x5a 1M 256k',
    '-c',
    'read -P 0x5a 1M 256k',
  ]);
  expect(io).toMatch(/read 262144\/262144 bytes at offset 1048576/);
  expect(io).not.toMatch(/Pattern verification failed/);
  expect(readFileSync(disk).subarray(MiB, MiB + 256 * 1024).every((b) => b === 0x5a)).toBe(true);
  expect(await server.stop()).toBe(0);
}, 60_000);

it('nbd-remapper copy migrates through TLS (nbds+unix:// with tls-certificates=), and says what to fix when the CA is wrong or TLS is missing', async () => {
  const { dir, certs, disk, data: original } = await scene('nbd-remapper-tls-copy-', 8 * MiB);
  const stranger = await makeTestCertificates(dir.file('other-pki'), 'some other CA');
  // The disk's halves swap places: every block moves.
  const map = dir.file('map.json');
  writeFileSync(map, JSON.stringify({ extents: [{ destOffset: 0, length: 4 * MiB, diskOffset: 4 * MiB }, { destOffset: 4 * MiB, length: 4 * MiB, diskOffset: 0 }] }));
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--map', map, '--socket', dir.file('nbd.sock'), '--control', control, '--cache', '1M', '--tls-certificates', certs.server]);
  cleanup(() => server.stop('SIGKILL'));
  await mustRun(process.execPath, [CLI, 'seal', '--control', control]);
  const from = server.uri('source');
  const to = server.uri('destination');

  const plain = await runTool(process.execPath, [CLI, 'copy', '--from', from.replace('nbds+unix', 'nbd+unix'), '--to', to, '--control', control]);
  expect(plain.code).not.toBe(0);
  expect(plain.stderr).toMatch(/requires TLS[\s\S]*nbds:\/\//);
  const untrusted = await runTool(process.execPath, [CLI, 'copy', '--from', withCerts(from, stranger.client), '--to', withCerts(to, stranger.client), '--control', control]);
  expect(untrusted.code).not.toBe(0);
  expect(untrusted.stderr).toMatch(/TLS with the server at .* failed[\s\S]*ca-cert\.pem/);

  await mustRun(process.execPath, [CLI, 'copy', '--from', withCerts(from, certs.client), '--to', withCerts(to, certs.client), '--control', control], { timeoutMs: 60_000 });
  await mustRun(process.execPath, [CLI, 'finish', '--control', control], { timeoutMs: 60_000 });
  const after = readFileSync(disk);
  expect(after.subarray(0, 4 * MiB).equals(original.subarray(4 * MiB))).toBe(true);
  expect(after.subarray(4 * MiB).equals(original.subarray(0, 4 * MiB))).toBe(true);
  expect(await server.stop()).toBe(0);
}, 120_000);

it('nbd-remapper copy with an nbds URI to a server without TLS says the server does not offer it', async () => {
  const dir = scratchDir('nbd-remapper-tls-none-');
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  randomImage(disk, MiB);
  const server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock'), '--read-only']);
  cleanup(() => server.stop('SIGKILL'));
  const secure = server.uri('source').replace(/^nbd\+unix:/, 'nbds+unix:');
  const result = await runTool(process.execPath, [CLI, 'copy', '--from', secure, '--to', `nbd+unix:///x?socket=${dir.file('none.sock')}`]);
  expect(result.code).not.toBe(0);
  expect(result.stderr).toMatch(/does not offer TLS: it answered NBD_OPT_STARTTLS with ERR_UNSUP[\s\S]*fix: use nbd:\/\/ or nbd\+unix:\/\/ \(no TLS\)/);
  expect(await server.stop()).toBe(0);
}, 60_000);

it('--tls-verify-peer lets in only clients with a certificate the CA signed, libnbd and nbd-remapper copy alike', async () => {
  const { dir, certs, disk, data } = await scene('nbd-remapper-tls-peer-', 4 * MiB);
  const stranger = await makeTestCertificates(dir.file('other-pki'), 'some other CA');
  const control = dir.file('control.sock');
  const server = await startServerProcess(['serve', '--disk', disk, '--listen', '127.0.0.1:0', '--control', control, '--tls-certificates', certs.server, '--tls-verify-peer']);
  cleanup(() => server.stop('SIGKILL'));
  expect(server.stdout()).toMatch(/clients must show a certificate that CA signed/);
  const source = server.uri('source');
  const destination = server.uri('destination');
  expect(source).toMatch(/^nbds:\/\//);

  const withoutCert = await runTool('nbdinfo', [withCerts(source, certs.client)]);
  expect(withoutCert.code).not.toBe(0);
  const otherCa = await runTool('nbdinfo', [withCerts(source, stranger.clientWithCert)]);
  expect(otherCa.code).not.toBe(0);
  expect(await mustRun('nbdinfo', [withCerts(source, certs.clientWithCert)])).toMatch(/with TLS/);

  await mustRun(process.execPath, [CLI, 'seal', '--control', control]);
  const refused = await runTool(process.execPath, [CLI, 'copy', '--from', withCerts(source, certs.client), '--to', withCerts(destination, certs.client)]);
  expect(refused.code).not.toBe(0);
  // The identity map: the copy writes every block back where it was, through TLS with the client's certificate.
  await mustRun(process.execPath, [CLI, 'copy', '--from', withCerts(source, certs.clientWithCert), '--to', withCerts(destination, certs.clientWithCert), '--control', control]);
  const back = dir.file('back.img');
  await mustRun('nbdcopy', [withCerts(destination, certs.clientWithCert), back]);
  expect(readFileSync(back).equals(data)).toBe(true);
  expect(await server.stop()).toBe(0);
  expect(server.stderr() + server.stdout()).toMatch(/TLS failed, dropping the client: .*certificate/i);
}, 60_000);
