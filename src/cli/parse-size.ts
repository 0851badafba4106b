import { UserError } from './user-error.js';

const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** "256M", "1G", "4096", "64k", "1.5G" → bytes (binary units, as dd and qemu-img use). */
export function parseSize(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const unit = match ? UNITS[match[2].toUpperCase()] : undefined;
  if (!match || unit === undefined) {
    throw new UserError(`${option} '${text}' is not a size`, `write a number of bytes with an optional K, M, G or T suffix, e.g. ${option} 256M`, 2);
  }
  return Math.floor(Number(match[1]) * unit);
}
