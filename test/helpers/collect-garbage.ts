import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** A real garbage collection, so the memory numbers measure what is live. */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}
