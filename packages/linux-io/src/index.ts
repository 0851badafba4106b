export { unavailableReason } from './addon.js';
export { sendBufferSize, sendQueueBytes, setSendBufferSize } from './send-buffer.js';
export { canReadWithoutWaiting, readCached, type CachedRead } from './pread-nowait.js';
export { canSendFromFile, sendFromFile, writtenBefore } from './send-from-file.js';
export { closeDescriptor, holdDescriptor, shutdownSocket } from './socket-hold.js';
export { returnFreeMemory } from './free-memory.js';
