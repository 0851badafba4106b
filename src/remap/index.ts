/** The remapping engine: map, views, ordering, finish. See docs/remap-engine.md. */
export type { BlockDevice } from './block-device.js';
export { MapError, type MapRule } from './map-error.js';
export { RemapMap, validateBlockSize, MIN_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_MAP_EXTENTS, mergeAdjacentExtents, type MapExtent, type HomeRun, type BytePiece } from './map.js';
export { createRemapper, DEFAULT_BLOCK_SIZE, DEFAULT_CACHE_BYTES, DEFAULT_REVISIT_CACHE_BYTES, type RemapperOptions } from './create-remapper.js';
export { RemapEngine } from './remap-engine.js';
export type { Phase } from './block-layout.js';
export type { RemapStatus, DurabilityStatus } from './remap-status.js';
export type { RestoredState } from './restore-state.js';
export type { FinishProgress } from './finish-planner.js';
export { SourceView } from './source-view.js';
export { DestinationView } from './destination-view.js';
export { MemoryStateJournal, type StateJournal, type StateRecord, type StateRecordType, type JournalInfo, type SealSample } from './state-journal.js';
