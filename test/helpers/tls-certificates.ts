import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mustRun } from './run-tool.js';

/**
 * Where a test CA put its files: `server` for `serve --tls-certificates`,
 * `client` for libnbd's `tls-certificates=` (the CA only), `clientWithCert`
 * the same with a client certificate the CA signed (for --tls-verify-peer).
 */
export interface TestCertificates {
  server: string;
  client: string;
  clientWithCert: string;
}

/**
 * A throwaway CA and a server certificate it signed for localhost and
 * 127.0.0.1 (openssl; P-256 keys, quick to make), laid out as nbdkit and
 * libnbd expect: the server directory has server-cert.pem and
 * server-key.pem, the client directory only the CA's ca-cert.pem.
 */
export async function makeTestCertificates(dir: string, name = 'nbd-remapper test CA'): Promise<TestCertificates> {
  const server = join(dir, 'server');
  const client = join(dir, 'client');
  const clientWithCert = join(dir, 'client-with-cert');
  for (const d of [server, client, clientWithCert]) mkdirSync(d, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const caKey = join(dir, 'ca-key.pem');
  const caCert = join(client, 'ca-cert.pem');
  await mustRun('openssl', ['req', '-x509', ...ec, '-keyout', caKey, '-out', caCert, '-days', '2', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const csr = join(dir, 'server.csr');
  await mustRun('openssl', ['req', ...ec, '-keyout', join(server, 'server-key.pem'), '-out', csr, '-subj', '/CN=localhost']);
  const extensions = join(dir, 'server-ext.cnf');
  writeFileSync(extensions, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await mustRun('openssl', ['x509', '-req', '-in', csr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', join(server, 'server-cert.pem'), '-days', '2', '-extfile', extensions]);
  copyFileSync(caCert, join(server, 'ca-cert.pem'));
  copyFileSync(caCert, join(clientWithCert, 'ca-cert.pem'));
  const clientCsr = join(dir, 'client.csr');
  await mustRun('openssl', ['req', ...ec, '-keyout', join(clientWithCert, 'client-key.pem'), '-out', clientCsr, '-subj', '/CN=nbd-remapper test client']);
  const clientExtensions = join(dir, 'client-ext.cnf');
  writeFileSync(clientExtensions, 'extendedKeyUsage=clientAuth\n');
  await mustRun('openssl', ['x509', '-req', '-in', clientCsr, '-CA', caCert, '-CAkey', caKey, '-CAcreateserial', '-out', join(clientWithCert, 'client-cert.pem'), '-days', '2', '-extfile', clientExtensions]);
  return { server, client, clientWithCert };
}
