/** A real garbage collection, so the memory numbers measure what is live. */
export { collectGarbageNow as collectGarbage } from '../../src/cli/give-back-memory.js';
