import {
  ClientFlag,
  GREETING_LENGTH,
  HandshakeFlag,
  Info,
  Option,
  OptionReply,
  ProtocolError,
  Sizes,
  decodeGreeting,
  decodeInfoReply,
  decodeOptionReplyHeader,
  decodeServerReplyData,
  encodeClientFlags,
  encodeInfoRequest,
  encodeOptionRequest,
  isOptionReplyError,
  nameOf,
  type BlockSizeConstraints,
} from 'nbd-protocol-ts';
import { NbdClientError } from './nbd-client-error.js';
import type { NbdTarget } from './nbd-uri.js';
import type { SocketReader } from '../net/socket-reader.js';

/** What the handshake settled for the transmission phase. */
export interface NegotiatedExport {
  size: number;
  transmissionFlags: number;
  /** As the server advertised them; undefined when it sent no NBD_INFO_BLOCK_SIZE. */
  blockSize: BlockSizeConstraints | undefined;
  structuredReplies: boolean;
}

/** Option replies carry names and short messages; anything bigger is a broken or hostile server. */
const MAX_OPTION_REPLY = 1024 * 1024;
/** INFO replies before the ACK of one GO; a server sending more is looping. */
const MAX_INFO_REPLIES = 256;
/** Exports listed when naming the ones a server has (after an unknown export name). */
const MAX_LISTED_EXPORTS = 1000;

/** Where the handshake reads and writes: the socket, then (after STARTTLS) TLS over it. */
export interface HandshakeChannel {
  reader: SocketReader;
  send(bytes: Buffer): void;
}

/**
 * The client side of the fixed-newstyle handshake: greeting, client flags,
 * NBD_OPT_STARTTLS and the upgrade (`startTls`) for nbds URIs,
 * NBD_OPT_STRUCTURED_REPLY (when wanted), then NBD_OPT_GO asking for the
 * block size constraints, which this client then honours.
 */
export async function negotiate(
  target: NbdTarget,
  plain: HandshakeChannel,
  options: { structuredReplies: boolean },
  /** For nbds URIs: upgrades the connection once the server acknowledged NBD_OPT_STARTTLS. */
  startTls: () => Promise<HandshakeChannel>,
): Promise<NegotiatedExport> {
  const { handshakeFlags } = await readGreeting(target, plain.reader);
  if ((handshakeFlags & HandshakeFlag.FIXED_NEWSTYLE) === 0) {
    throw new NbdClientError('handshake', `the server at ${target.uri} does not speak fixed-newstyle NBD`, 'use a server from this decade (nbd-remapper serve, qemu-nbd, nbdkit, nbd-server 3.10+)');
  }
  const noZeroes = (handshakeFlags & HandshakeFlag.NO_ZEROES) !== 0;
  plain.send(encodeClientFlags(ClientFlag.FIXED_NEWSTYLE | (noZeroes ? ClientFlag.NO_ZEROES : 0)));
  let channel = plain;
  if (target.tls !== undefined) {
    channel.send(encodeOptionRequest(Option.STARTTLS));
    const reply = await readOptionReply(target, channel.reader, Option.STARTTLS);
    if (reply.type !== OptionReply.ACK) {
      const said = reply.data.length > 0 ? ` (server: ${reply.data.toString('utf8')})` : '';
      if (isOptionReplyError(reply.type)) {
        throw new NbdClientError('handshake', `the server at ${target.uri} does not offer TLS: it answered NBD_OPT_STARTTLS with ${nameOf(OptionReply, reply.type)}${said}`, 'use nbd:// or nbd+unix:// (no TLS), or give the server a certificate (serve --tls-certificates DIR)');
      }
      throw unexpected(target, 'STARTTLS', reply.type);
    }
    channel = await startTls();
  }
  const { reader } = channel;
  const send = (bytes: Buffer): void => channel.send(bytes);

  let structuredReplies = false;
  if (options.structuredReplies) {
    send(encodeOptionRequest(Option.STRUCTURED_REPLY));
    const reply = await readOptionReply(target, reader, Option.STRUCTURED_REPLY);
    if (reply.type === OptionReply.ACK) structuredReplies = true;
    else if (!isOptionReplyError(reply.type)) throw unexpected(target, 'STRUCTURED_REPLY', reply.type);
    // An error reply just means simple replies, which every server speaks.
  }

  send(encodeOptionRequest(Option.GO, encodeInfoRequest(target.exportName, [Info.BLOCK_SIZE])));
  let size: number | undefined;
  let transmissionFlags = 0;
  let blockSize: BlockSizeConstraints | undefined;
  for (let replies = 0; ; replies++) {
    if (replies > MAX_INFO_REPLIES) throw protocolError(target, `more than ${MAX_INFO_REPLIES} replies to NBD_OPT_GO`);
    const reply = await readOptionReply(target, reader, Option.GO);
    if (reply.type === OptionReply.ACK) break;
    if (reply.type === OptionReply.INFO) {
      const info = decodeOrFail(target, () => decodeInfoReply(reply.data));
      if (info.kind === 'export') {
        size = info.size;
        transmissionFlags = info.transmissionFlags;
      } else if (info.kind === 'block-size') {
        blockSize = checkBlockSize(target, info.blockSize);
      }
      continue;
    }
    if (isOptionReplyError(reply.type)) throw await refusal(target, reader, send, reply.type, reply.data);
    throw unexpected(target, 'GO', reply.type);
  }
  if (size === undefined) throw protocolError(target, 'the server acknowledged NBD_OPT_GO without sending NBD_INFO_EXPORT');
  if (!Number.isSafeInteger(size)) throw protocolError(target, `export size ${size} is beyond what this client can address`);
  return { size, transmissionFlags, blockSize, structuredReplies };
}

async function readGreeting(target: NbdTarget, reader: SocketReader): Promise<{ handshakeFlags: number }> {
  const bytes = await reader.read(GREETING_LENGTH);
  try {
    return decodeGreeting(bytes);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new NbdClientError('handshake', `${target.uri} does not answer like an NBD server (${why})`, 'check that the address or socket belongs to an NBD server and not to something else', { cause: err });
  }
}

interface OptionReplyFrame {
  type: number;
  data: Buffer;
}

async function readOptionReply(target: NbdTarget, reader: SocketReader, option: number): Promise<OptionReplyFrame> {
  const headerBytes = await reader.read(Sizes.OPTION_REPLY_HEADER);
  const header = decodeOrFail(target, () => decodeOptionReplyHeader(headerBytes));
  if (header.option !== option) {
    throw protocolError(target, `a reply to option ${nameOf(Option, header.option)} arrived while waiting for ${nameOf(Option, option)}`);
  }
  if (header.length > MAX_OPTION_REPLY) throw protocolError(target, `an option reply of ${header.length} bytes`);
  return { type: header.replyType, data: await reader.read(header.length) };
}

/** The server refused NBD_OPT_GO: say why in the user's terms. */
async function refusal(
  target: NbdTarget,
  reader: SocketReader,
  send: (bytes: Buffer) => void,
  replyType: number,
  data: Buffer,
): Promise<NbdClientError> {
  const said = data.length > 0 ? ` (server: ${data.toString('utf8')})` : '';
  const name = target.exportName === '' ? 'the default export' : `export '${target.exportName}'`;
  switch (replyType) {
    case OptionReply.ERR_UNKNOWN: {
      const offered = await listExports(target, reader, send);
      const fix = offered === undefined || offered.length === 0
        ? 'check the export name in the URI (the part after the last /)'
        : `put one of the exports it offers in the URI: ${offered.map((e) => `'${e}'`).join(', ')}`;
      return new NbdClientError('handshake', `${name} does not exist on the server at ${target.uri}${said}`, fix);
    }
    case OptionReply.ERR_UNSUP:
      return new NbdClientError('handshake', `the server at ${target.uri} does not support NBD_OPT_GO${said}`, 'the server is too old for this client; use a current nbd-server, qemu-nbd or nbdkit');
    case OptionReply.ERR_TLS_REQD:
      return new NbdClientError('handshake', `the server at ${target.uri} requires TLS${said}`, 'use nbds:// (or nbds+unix://) with ?tls-certificates=DIR, the directory with the ca-cert.pem of the CA that signed its certificate');
    case OptionReply.ERR_POLICY:
      return new NbdClientError('handshake', `the server at ${target.uri} refused ${name} by policy${said}`, 'see the server\'s log and configuration (allowed clients, connection limits)');
    case OptionReply.ERR_SHUTDOWN:
      return new NbdClientError('handshake', `the server at ${target.uri} is shutting down${said}`, 'wait for it to restart, then try again');
    default:
      return new NbdClientError('handshake', `the server at ${target.uri} refused ${name} with ${nameOf(OptionReply, replyType)}${said}`, 'see the server\'s log');
  }
}

/** Asks the server which exports it has, for the message about an unknown one. Best effort: undefined if it will not say. */
async function listExports(target: NbdTarget, reader: SocketReader, send: (bytes: Buffer) => void): Promise<string[] | undefined> {
  send(encodeOptionRequest(Option.LIST));
  const names: string[] = [];
  for (let i = 0; i <= MAX_LISTED_EXPORTS; i++) {
    const reply = await readOptionReply(target, reader, Option.LIST);
    if (reply.type === OptionReply.ACK) return names;
    if (reply.type !== OptionReply.SERVER) return undefined;
    names.push(decodeOrFail(target, () => decodeServerReplyData(reply.data)).name);
  }
  return names;
}

function checkBlockSize(target: NbdTarget, c: BlockSizeConstraints): BlockSizeConstraints {
  const powerOfTwo = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;
  if (!powerOfTwo(c.minimum) || c.minimum > 65536 || c.maximum < c.minimum) {
    throw protocolError(target, `nonsensical block size constraints (minimum ${c.minimum}, preferred ${c.preferred}, maximum ${c.maximum})`);
  }
  return c;
}

function decodeOrFail<T>(target: NbdTarget, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof ProtocolError || err instanceof RangeError) throw protocolError(target, err.message, err);
    throw err;
  }
}

function unexpected(target: NbdTarget, option: string, replyType: number): NbdClientError {
  return protocolError(target, `unexpected reply ${nameOf(OptionReply, replyType)} to NBD_OPT_${option}`);
}

function protocolError(target: NbdTarget, why: string, cause?: unknown): NbdClientError {
  return new NbdClientError('protocol', `the server at ${target.uri} broke the NBD handshake: ${why}`, 'this is a bug in the server; report it with the server\'s log', { cause });
}
