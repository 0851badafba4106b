/** The engine's defaults, apart from the engine: the CLI shows them in --help without loading it. */
export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_REVISIT_CACHE_BYTES = 64 * 1024 * 1024;
/**
 * The first and last MiB of a disk hold its partition tables (MBR, GPT and
 * the GPT's backup) and boot loaders (in the gap before the first
 * partition). Where they are nobody's home, nothing spills there unless
 * they were declared free (RemapState.offerAsSlots).
 */
export const DEFAULT_KEPT_EDGE_BYTES = 1024 * 1024;

/**
 * Memory per destination block held in RAM, on top of its data: its entries
 * in the tables of held, dirty and landable blocks (41–48 bytes measured,
 * test/unit/remap/cache-reservation.test.ts; the tables double as they grow,
 * so up to about twice that just after). A full cache of 512-byte blocks
 * adds a fifth to the cache's size, so the memory check at start counts it.
 */
export const HELD_BLOCK_BOOKKEEPING_BYTES = 96;
