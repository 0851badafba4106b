/** The NBD client: connect to an export by URI, then pipelined reads, writes, zeroes, trims and flushes. */
export { NbdClient, DEFAULT_CLIENT_BLOCK_SIZE, describeRequest, type NbdClientOptions, type WriteFlags, type ZeroFlags } from './nbd-client.js';
export { NbdClientError, type NbdClientErrorKind } from './nbd-client-error.js';
export { DEFAULT_NBD_PORT, NbdUriError, describeTransport, parseNbdUri, sameExport, type NbdTarget, type NbdTransport } from './nbd-uri.js';
