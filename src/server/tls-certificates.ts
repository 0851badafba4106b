import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';

/**
 * TLS for NBD (spec, "TLS support"): 'allowed' is SELECTIVETLS (a client
 * may upgrade with NBD_OPT_STARTTLS, or not), 'required' is FORCEDTLS
 * (nothing but STARTTLS and ABORT is answered until TLS is up).
 */
export interface ServerTls {
  mode: 'allowed' | 'required';
  context: SecureContext;
  /** Where the certificate came from, for the start-up line. */
  source: string;
  /** Clients must show a certificate the CA of ca-cert.pem signed (nbdkit's --tls-verify-peer). */
  verifyPeer: boolean;
}

/** The files of a certificates directory, named as nbdkit, qemu and libnbd name them. */
export const SERVER_CERT_FILE = 'server-cert.pem';
export const SERVER_KEY_FILE = 'server-key.pem';
export const CA_CERT_FILE = 'ca-cert.pem';

/** Why a certificates directory cannot be used, naming the file and the fix. */
export class TlsCertificatesError extends Error {
  override readonly name = 'TlsCertificatesError';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}

/**
 * The server's certificate and key from `dir` (server-cert.pem with its
 * chain, server-key.pem), and with `verifyPeer` the CA that signs client
 * certificates (ca-cert.pem), checked now: a server that starts must be able
 * to finish every TLS handshake.
 */
export function loadServerTls(dir: string, mode: ServerTls['mode'], verifyPeer = false): ServerTls {
  const read = (name: string, fix: string): Buffer => {
    const path = join(dir, name);
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TlsCertificatesError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, fix);
    }
  };
  const ownFix = `put the server's certificate (PEM, chain included) in ${SERVER_CERT_FILE} and its private key in ${SERVER_KEY_FILE} in that directory, as for nbdkit --tls-certificates`;
  const cert = read(SERVER_CERT_FILE, ownFix);
  const key = read(SERVER_KEY_FILE, ownFix);
  const ca = verifyPeer ? read(CA_CERT_FILE, `put the certificate of the CA that signs the clients' certificates in ${CA_CERT_FILE} there, or leave out --tls-verify-peer`) : undefined;
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key, ...(ca && { ca }) });
  } catch (err) {
    throw new TlsCertificatesError(
      `the certificates in ${dir} cannot be used: ${(err as Error).message}`,
      `check that ${SERVER_KEY_FILE} belongs to ${SERVER_CERT_FILE} and every file is PEM`,
    );
  }
  return { mode, context, source: dir, verifyPeer };
}
