import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A connected unix socket pair through a listener in the system's temporary
 * directory: `accepted` is the server's side, as NbdServer gets it. `close`
 * destroys both and the listener.
 */
export async function unixSocketPair(): Promise<{ client: net.Socket; accepted: net.Socket; close(): void }> {
  const path = join(tmpdir(), `pair-${process.pid}-${Math.random().toString(16).slice(2)}.sock`);
  const server = net.createServer();
  const acceptedP = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const client = net.connect(path);
  const accepted = await acceptedP;
  return {
    client,
    accepted,
    close: () => {
      client.destroy();
      accepted.destroy();
      server.close();
    },
  };
}
