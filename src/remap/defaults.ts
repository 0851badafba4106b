/** The engine's defaults, apart from the engine: the CLI shows them in --help without loading it. */
export const DEFAULT_BLOCK_SIZE = 4096;
export const DEFAULT_CACHE_BYTES = 256 * 1024 * 1024;
export const DEFAULT_REVISIT_CACHE_BYTES = 64 * 1024 * 1024;
