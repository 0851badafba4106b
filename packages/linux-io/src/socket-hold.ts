import { addon } from './addon.js';

function loaded(): Exclude<typeof addon, Error> {
  if (addon instanceof Error) throw addon;
  return addon;
}

/**
 * A duplicate of a socket's descriptor (close-on-exec): the socket stays open
 * in the kernel until closeDescriptor, whoever closes the original. Read
 * replies sent from the page cache stay in a unix peer's receive queue as
 * references to the file's pages until it reads them or closes, and only a
 * descriptor of our side can tell when (sendQueueBytes). Throws what fcntl
 * reports (EBADF, EMFILE), and Error without the addon.
 */
export function holdDescriptor(fd: number): number {
  return loaded().holdDescriptor(fd);
}

/** shutdown(SHUT_RDWR): the peer reads what is queued, then the end of the stream. A peer already gone is no error. */
export function shutdownSocket(fd: number): void {
  loaded().shutdownSocket(fd);
}

export function closeDescriptor(fd: number): void {
  loaded().closeDescriptor(fd);
}
