import { existsSync, readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { join } from 'node:path';
import { checkServerIdentity, connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { NbdClientError } from './nbd-client-error.js';
import type { NbdTarget, NbdTls } from './nbd-uri.js';

/** What a certificates directory holds, named as libnbd, nbdkit and QEMU name them. */
const CA_CERT = 'ca-cert.pem';
const CLIENT_CERT = 'client-cert.pem';
const CLIENT_KEY = 'client-key.pem';

/**
 * After the server acknowledged NBD_OPT_STARTTLS: TLS over the connected
 * socket, the server's certificate checked against the CA of
 * `tls-certificates` (or the system's CAs), and its name against the URI's
 * host (TCP) or `tls-hostname`. Resolves once the TLS handshake is done.
 */
export async function upgradeToTls(target: NbdTarget, socket: Socket): Promise<TLSSocket> {
  const tls = target.tls ?? {};
  const secure = connect(tlsOptions(target, tls, socket));
  await new Promise<void>((resolve, reject) => {
    secure.once('secureConnect', () => resolve());
    secure.once('error', (err) => {
      secure.destroy();
      reject(
        new NbdClientError(
          'handshake',
          `TLS with the server at ${target.uri} failed: ${err.message}`,
          tls.certificates === undefined
            ? 'give the directory with the ca-cert.pem of the CA that signed the server\'s certificate: ?tls-certificates=DIR'
            : `check that ${join(tls.certificates, CA_CERT)} is the CA that signed the server's certificate, and that the certificate names ${expectedName(target, tls) ?? 'the host'} (else ?tls-hostname=NAME)`,
          { cause: err },
        ),
      );
    });
  });
  return secure;
}

function tlsOptions(target: NbdTarget, tls: NbdTls, socket: Socket): ConnectionOptions {
  const options: ConnectionOptions = { socket, rejectUnauthorized: true };
  if (tls.certificates !== undefined) {
    const file = (name: string): Buffer => {
      const path = join(tls.certificates as string, name);
      try {
        return readFileSync(path);
      } catch (err) {
        throw new NbdClientError('handshake', `cannot read ${path} for TLS with ${target.uri}: ${(err as Error).message}`, 'put the PEM of the CA that signed the server\'s certificate there, or point tls-certificates= at the directory that has it');
      }
    };
    options.ca = file(CA_CERT);
    // A client certificate, when the directory has one (servers that authenticate clients ask for it).
    if (existsSync(join(tls.certificates, CLIENT_CERT))) {
      options.cert = file(CLIENT_CERT);
      options.key = file(CLIENT_KEY);
    }
  }
  const name = expectedName(target, tls);
  // SNI takes a host name, not an address.
  if (name !== undefined && isIP(name) === 0) options.servername = name;
  // The chain is always checked; the name only where there is one to check (libnbd checks none on a unix socket).
  options.checkServerIdentity = (_host, cert) => (name === undefined ? undefined : checkServerIdentity(name, cert));
  return options;
}

function expectedName(target: NbdTarget, tls: NbdTls): string | undefined {
  return tls.hostname ?? (target.transport.kind === 'tcp' ? target.transport.host : undefined);
}
