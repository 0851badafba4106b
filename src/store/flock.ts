import { flock } from 'fs-ext';

/**
 * flock(2) as a promise: 'exnb' takes an exclusive lock or fails at once
 * (EAGAIN/EWOULDBLOCK), 'un' drops it. promisify() would pick fs-ext's
 * numeric overload; the string flags read better.
 */
export function flockAsync(fd: number, operation: 'exnb' | 'un'): Promise<void> {
  return new Promise((resolve, reject) => flock(fd, operation, (err) => (err ? reject(err) : resolve())));
}
