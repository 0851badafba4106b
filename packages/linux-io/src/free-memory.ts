import { addon } from './addon.js';

/**
 * malloc_trim(0): the C allocator gives every free page it can back to the
 * kernel, not only those at the top of its heap. For after memory was let go
 * of in bulk (and collected: V8 frees an array buffer's memory only once it is
 * garbage collected). True when some was given back; always false without
 * glibc. Throws Error without the addon.
 */
export function returnFreeMemory(): boolean {
  if (addon instanceof Error) throw addon;
  return addon.returnFreeMemory();
}
