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
}

/** The files of a certificates directory, named as nbdkit, qemu and libnbd name them. */
export const SERVER_CERT_FILE = 'server-cert.pem';
export const SERVER_KEY_FILE = 'server-key.pem';

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
 * chain, server-key.pem), checked now: a server that starts must be able to
 * finish every TLS handshake.
 */
export function loadServerTls(dir: string, mode: ServerTls['mode']): ServerTls {
  const read = (name: string): Buffer => {
    const path = join(dir, name);
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TlsCertificatesError(
        `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`,
        `put the server's certificate (PEM, chain included) in ${SERVER_CERT_FILE} and its private key in ${SERVER_KEY_FILE} in that directory, as for nbdkit --tls-certificates`,
      );
    }
  };
  const cert = read(SERVER_CERT_FILE);
  const key = read(SERVER_KEY_FILE);
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsCertificatesError(
      `${join(dir, SERVER_CERT_FILE)} and ${SERVER_KEY_FILE} cannot be used together: ${(err as Error).message}`,
      'check that the key belongs to the certificate and both are PEM',
    );
  }
  return { mode, context, source: dir };
}
