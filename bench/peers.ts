/** The servers compared: ours, nbdkit's file plugin and qemu-nbd, each exporting one image as `source` over a unix socket. */
import { join } from 'node:path';
import { CLI } from './config.js';
import { startServer, type Server } from './proc.js';

export interface Peer {
  name: string;
  /** Serve `image` as export `source` on `socket`; `dir` is a private scratch directory for anything else it needs. */
  start(image: string, socket: string, dir: string): Server;
}

export const OURS: Peer = {
  name: 'nbd-remapper',
  // A private control socket: the default one is shared by every server on the machine.
  start: (image, socket, dir) => startServer(process.execPath, [CLI, 'serve', '--disk', image, '--socket', socket, '--control', join(dir, 'control.sock')], socket),
};

export const NBDKIT_FILE: Peer = {
  name: 'nbdkit file',
  start: (image, socket) => startServer('nbdkit', ['-f', '-U', socket, '-e', 'source', 'file', `file=${image}`], socket),
};

export const QEMU_NBD: Peer = {
  name: 'qemu-nbd',
  start: (image, socket) => startServer('qemu-nbd', ['-f', 'raw', '-x', 'source', '-k', socket, '--persistent', '--cache=writeback', image], socket),
};

export const ALL_PEERS: readonly Peer[] = [OURS, NBDKIT_FILE, QEMU_NBD];

/**
 * The same servers exporting read-only: ours serves a plain view (no remap
 * engine), which sends cached reads from the page cache (sendfile).
 */
export const OURS_READ_ONLY: Peer = {
  name: 'nbd-remapper --read-only',
  start: (image, socket, dir) => startServer(process.execPath, [CLI, 'serve', '--disk', image, '--read-only', '--socket', socket, '--control', join(dir, 'control.sock')], socket),
};

export const NBDKIT_FILE_READ_ONLY: Peer = {
  name: 'nbdkit -r file',
  start: (image, socket) => startServer('nbdkit', ['-f', '-r', '-U', socket, '-e', 'source', 'file', `file=${image}`], socket),
};

export const QEMU_NBD_READ_ONLY: Peer = {
  name: 'qemu-nbd -r',
  start: (image, socket) => startServer('qemu-nbd', ['-r', '-f', 'raw', '-x', 'source', '-k', socket, '--persistent', '--cache=writeback', image], socket),
};

export const READ_ONLY_PEERS: readonly Peer[] = [OURS_READ_ONLY, NBDKIT_FILE_READ_ONLY, QEMU_NBD_READ_ONLY];

export const uriOf = (socket: string, exportName = 'source'): string => `nbd+unix:///${exportName}?socket=${socket}`;
