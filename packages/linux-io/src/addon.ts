import { createRequire } from 'node:module';

/** The addon's functions; each throws an Error with `code` and `errno` when its system call fails. */
export interface LinuxIoAddon {
  sendBufferSize(fd: number): number;
  setSendBufferSize(fd: number, bytes: number): number;
  sendQueueBytes(fd: number): number;
  preadNoWait(fd: number, buffer: Uint8Array, position: number): number;
  sendFromFile(socketFd: number, header: Uint8Array, fileFd: number, position: number, length: number): number;
  holdDescriptor(fd: number): number;
  shutdownSocket(fd: number): void;
  closeDescriptor(fd: number): void;
  returnFreeMemory(): boolean;
}

const FUNCTIONS = ['sendBufferSize', 'setSendBufferSize', 'sendQueueBytes', 'preadNoWait', 'sendFromFile', 'holdDescriptor', 'shutdownSocket', 'closeDescriptor', 'returnFreeMemory'] as const;

function isLinuxIoAddon(value: unknown): value is LinuxIoAddon {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return FUNCTIONS.every((name) => typeof v[name] === 'function');
}

function load(): LinuxIoAddon | Error {
  try {
    const addon: unknown = createRequire(import.meta.url)('../build/Release/linux_io.node');
    return isLinuxIoAddon(addon) ? addon : new Error('linux_io.node lacks a function: rebuild it (npm ci)');
  } catch (err) {
    // Node's message goes on with the whole require stack: the first line says it.
    const firstLine = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    return new Error((err as { code?: unknown }).code === 'MODULE_NOT_FOUND' ? `not built (${firstLine})` : firstLine, { cause: err });
  }
}

/** The loaded addon, or why it did not load (not built: `npm ci` builds it with node-gyp). */
export const addon: LinuxIoAddon | Error = load();

/** Why the addon is missing, or undefined when it loaded. */
export const unavailableReason: string | undefined = addon instanceof Error ? addon.message : undefined;
