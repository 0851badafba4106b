/** nbd-protocol-ts: the NBD wire protocol as pure codecs, a request stream parser and the handshake state machine. */
export * from './constants.js';
export * from './errors.js';
export * from './types.js';
export * from './protocol-errors.js';
export { ByteQueue } from './byte-queue.js';
export {
  CLIENT_FLAGS_LENGTH,
  GREETING_LENGTH,
  KNOWN_CLIENT_FLAGS,
  decodeClientFlags,
  decodeGreeting,
  encodeClientFlags,
  encodeGreeting,
} from './greeting-codec.js';
export {
  decodeOptionReplyHeader,
  decodeOptionRequestHeader,
  encodeOptionReply,
  encodeOptionRequest,
  type OptionReplyHeader,
  type OptionRequestHeader,
} from './option-codec.js';
export {
  decodeInfoRequest,
  decodeMetaContextRequest,
  encodeInfoRequest,
  encodeMetaContextRequest,
  type InfoRequest,
  type MetaContextRequest,
} from './option-request-payloads.js';
export {
  decodeInfoReply,
  decodeMetaContextReplyData,
  decodeServerReplyData,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReplyData,
  encodeServerReplyData,
  type InfoReply,
} from './option-reply-payloads.js';
export { decodeExportNameReply, encodeExportNameReply } from './export-name-reply.js';
export { contextNameProblem, contextsListedBy, contextsSelectedBy } from './meta-context-query.js';
export { HandshakeMachine, type HandshakeEvent, type HandshakeOptions, type TlsMode } from './handshake.js';
export { decodeRequest, encodeRequest, requestHeaderLength, type RequestInit } from './request-codec.js';
export { decodeSimpleReply, encodeSimpleReply } from './simple-reply-codec.js';
export {
  decodeChunkHeader,
  decodeChunkPayload,
  encodeBlockStatus,
  encodeChunkHeader,
  encodeErrorChunk,
  encodeErrorOffsetChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHole,
  type ChunkHeader,
  type ChunkPayload,
} from './structured-reply-codec.js';
export { RequestParser, type RequestFrame, type RequestParserOptions } from './request-parser.js';
