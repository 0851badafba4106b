import { ByteQueue } from './byte-queue.js';
import { ClientFlag, IHAVEOPT_MAGIC, Info, Option, OptionReply, Sizes, TransmissionFlag, nameOf } from './constants.js';
import { encodeExportNameReply } from './export-name-reply.js';
import { CLIENT_FLAGS_LENGTH, KNOWN_CLIENT_FLAGS, decodeClientFlags, encodeGreeting } from './greeting-codec.js';
import { contextsListedBy, contextsSelectedBy } from './meta-context-query.js';
import { decodeOptionRequestHeader, encodeOptionReply, type OptionRequestHeader } from './option-codec.js';
import {
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReplyData,
  encodeServerReplyData,
} from './option-reply-payloads.js';
import { decodeInfoRequest, decodeMetaContextRequest, type InfoRequest, type MetaContextRequest } from './option-request-payloads.js';
import { OptionPayloadError } from './protocol-errors.js';
import type { ExportDescriptor, ExportRegistry, NegotiatedSession } from './types.js';
import { encodeTextTruncated, stringDefect } from './wire-strings.js';

/**
 * TLS policy (spec, "TLS support"): 'off' is NOTLS (STARTTLS gets
 * ERR_UNSUP), 'allowed' is SELECTIVETLS with no TLS-only export, 'required'
 * is FORCEDTLS (every option but STARTTLS and ABORT gets ERR_TLS_REQD
 * until TLS is up).
 */
export type TlsMode = 'off' | 'allowed' | 'required';

export interface HandshakeOptions {
  /** Longer option data is answered with ERR_TOO_BIG and skipped unbuffered. Default 65536. */
  maxOptionLength?: number;
  /** A client sending more options than this is disconnected. Default 256. */
  maxOptions?: number;
  /** Default 'off'. */
  tls?: TlsMode;
}

export type HandshakeEvent =
  /** Write these bytes to the client, in order. */
  | { type: 'send'; data: Buffer }
  /** The transmission phase begins; no more events. */
  | { type: 'done'; session: NegotiatedSession }
  /** Close the connection after sending what came before. */
  | { type: 'close'; reason: string }
  /**
   * Comes right after the 'send' of the ACK: once that is written, upgrade the
   * socket to TLS and keep calling push() with the decrypted bytes.
   */
  | { type: 'starttls' };

const DEFAULT_MAX_OPTION_LENGTH = 65536;
const DEFAULT_MAX_OPTIONS = 256;

type Phase =
  | { name: 'client-flags' }
  | { name: 'option-header' }
  | { name: 'option-data'; header: OptionRequestHeader }
  | { name: 'skipping'; remaining: number }
  | { name: 'awaiting-tls' }
  | { name: 'finished'; outcome: 'done' | 'closed' };

interface MetaContextSelection {
  /** Canonical name of the export the selection was made for. */
  exportName: string;
  contexts: ReadonlyMap<number, string>;
}

/**
 * The server side of the fixed-newstyle handshake as a pure state machine:
 * bytes in, events out. The caller writes the greeting, feeds every received
 * chunk to push() and carries out the events in order.
 */
export class HandshakeMachine {
  private readonly queue = new ByteQueue();
  private readonly maxOptionLength: number;
  private readonly maxOptions: number;
  private readonly tls: TlsMode;
  private phase: Phase = { name: 'client-flags' };
  private noZeroes = false;
  private optionsSeen = 0;
  private tlsActive = false;
  private structuredReplies = false;
  private metaContexts: MetaContextSelection | undefined;
  private events: HandshakeEvent[] = [];

  constructor(
    private readonly registry: ExportRegistry,
    options: HandshakeOptions = {},
  ) {
    this.maxOptionLength = options.maxOptionLength ?? DEFAULT_MAX_OPTION_LENGTH;
    this.maxOptions = options.maxOptions ?? DEFAULT_MAX_OPTIONS;
    this.tls = options.tls ?? 'off';
  }

  greeting(): Buffer {
    return encodeGreeting();
  }

  /** Bytes held for an option not yet complete (at most one header plus maxOptionLength). */
  get buffered(): number {
    return this.queue.length;
  }

  push(chunk: Buffer): HandshakeEvent[] {
    if (this.phase.name === 'finished') {
      if (this.phase.outcome === 'done') {
        throw new Error('the handshake is over: bytes after it belong to the transmission phase');
      }
      return [];
    }
    if (this.phase.name === 'awaiting-tls') this.phase = { name: 'option-header' };
    this.queue.push(chunk);
    this.events = [];
    // Every step consumes bytes or reports that it needs more, so this ends.
    while (this.step());
    return this.events;
  }

  private step(): boolean {
    const phase = this.phase;
    switch (phase.name) {
      case 'client-flags':
        if (this.queue.length < CLIENT_FLAGS_LENGTH) return false;
        this.onClientFlags(decodeClientFlags(this.queue.take(CLIENT_FLAGS_LENGTH)));
        return true;
      case 'option-header':
        if (this.queue.length < Sizes.OPTION_REQUEST_HEADER) return false;
        this.onOptionHeader(decodeOptionRequestHeader(this.queue.take(Sizes.OPTION_REQUEST_HEADER)));
        return true;
      case 'option-data': {
        if (this.queue.length < phase.header.length) return false;
        const data = this.queue.take(phase.header.length);
        this.phase = { name: 'option-header' };
        this.onOption(phase.header.option, data);
        return true;
      }
      case 'skipping': {
        const n = Math.min(phase.remaining, this.queue.length);
        this.queue.skip(n);
        const remaining = phase.remaining - n;
        this.phase = remaining === 0 ? { name: 'option-header' } : { name: 'skipping', remaining };
        return remaining === 0;
      }
      case 'awaiting-tls':
      case 'finished':
        return false;
    }
  }

  private onClientFlags(flags: number): void {
    if ((flags & ClientFlag.FIXED_NEWSTYLE) === 0) {
      this.close('client did not set NBD_FLAG_C_FIXED_NEWSTYLE; only fixed newstyle is supported');
    } else if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) {
      this.close(`client set unknown flags 0x${(flags & ~KNOWN_CLIENT_FLAGS).toString(16)}`);
    } else {
      this.noZeroes = (flags & ClientFlag.NO_ZEROES) !== 0;
      this.phase = { name: 'option-header' };
    }
  }

  private onOptionHeader(header: OptionRequestHeader): void {
    if (header.magic !== IHAVEOPT_MAGIC) {
      this.close(`option request has magic 0x${header.magic.toString(16)}, not IHAVEOPT`);
      return;
    }
    this.optionsSeen++;
    if (this.optionsSeen > this.maxOptions) {
      this.close(`client sent more than ${this.maxOptions} options`);
      return;
    }
    if (header.length <= this.maxOptionLength) {
      this.phase = { name: 'option-data', header };
      return;
    }
    if (header.option === Option.EXPORT_NAME) {
      // EXPORT_NAME has no error reply; it cannot name a real export at this size anyway.
      this.close(`NBD_OPT_EXPORT_NAME with ${header.length} bytes of data`);
      return;
    }
    // SET replaces the selection even when it fails (spec), also when it is too big to read.
    if (header.option === Option.SET_META_CONTEXT) this.metaContexts = undefined;
    if (this.tlsRequiredFor(header.option)) {
      this.replyError(header.option, OptionReply.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first');
    } else {
      this.replyError(
        header.option,
        OptionReply.ERR_TOO_BIG,
        `option data of ${header.length} bytes exceeds the limit of ${this.maxOptionLength}`,
      );
    }
    this.phase = { name: 'skipping', remaining: header.length };
  }

  private tlsRequiredFor(option: number): boolean {
    return this.tls === 'required' && !this.tlsActive && option !== Option.STARTTLS && option !== Option.ABORT;
  }

  private onOption(option: number, data: Buffer): void {
    if (this.tlsRequiredFor(option)) {
      if (option === Option.EXPORT_NAME) this.close('NBD_OPT_EXPORT_NAME before the TLS this server requires');
      else this.replyError(option, OptionReply.ERR_TLS_REQD, 'TLS is required: send NBD_OPT_STARTTLS first');
      return;
    }
    switch (option) {
      case Option.EXPORT_NAME:
        return this.onExportName(data);
      case Option.ABORT:
        // The spec asks servers to ignore any data sent with ABORT.
        this.send(encodeOptionReply(option, OptionReply.ACK));
        return this.close('client sent NBD_OPT_ABORT');
      case Option.LIST:
        return this.onList(data);
      case Option.STARTTLS:
        return this.onStartTls(data);
      case Option.INFO:
      case Option.GO:
        return this.onInfoOrGo(option, data);
      case Option.STRUCTURED_REPLY:
        return this.onStructuredReply(data);
      case Option.LIST_META_CONTEXT:
      case Option.SET_META_CONTEXT:
        return this.onMetaContext(option, data);
      default:
        return this.replyError(option, OptionReply.ERR_UNSUP, `option ${nameOf(Option, option)} is not supported`);
    }
  }

  private onExportName(data: Buffer): void {
    const defect = stringDefect(data);
    if (defect) return this.close(`NBD_OPT_EXPORT_NAME: the export name ${defect}`);
    const name = data.toString('utf8');
    const exp = this.registry.lookup(name);
    if (!exp) return this.close(`NBD_OPT_EXPORT_NAME: no export named "${name}"`);
    const flags = this.transmissionFlags(exp);
    this.send(encodeExportNameReply(exp.size, flags, this.noZeroes));
    this.finish(exp, flags);
  }

  private onList(data: Buffer): void {
    if (data.length > 0) return this.replyError(Option.LIST, OptionReply.ERR_INVALID, 'NBD_OPT_LIST takes no data');
    for (const exp of this.registry.list()) {
      this.send(encodeOptionReply(Option.LIST, OptionReply.SERVER, encodeServerReplyData(exp.name, exp.description)));
    }
    this.send(encodeOptionReply(Option.LIST, OptionReply.ACK));
  }

  private onStartTls(data: Buffer): void {
    const option = Option.STARTTLS;
    if (this.tls === 'off') return this.replyError(option, OptionReply.ERR_UNSUP, 'this server does not offer TLS');
    if (data.length > 0) return this.replyError(option, OptionReply.ERR_INVALID, 'NBD_OPT_STARTTLS takes no data');
    if (this.tlsActive) return this.replyError(option, OptionReply.ERR_INVALID, 'TLS is already active');
    this.send(encodeOptionReply(option, OptionReply.ACK));
    this.events.push({ type: 'starttls' });
    this.tlsActive = true;
    // The spec forbids carrying negotiation state across the upgrade.
    this.structuredReplies = false;
    this.metaContexts = undefined;
    // Plaintext queued behind STARTTLS must never be read as if it came through TLS (command injection).
    this.queue.skip(this.queue.length);
    this.phase = { name: 'awaiting-tls' };
  }

  private onInfoOrGo(option: number, data: Buffer): void {
    let request: InfoRequest;
    try {
      request = decodeInfoRequest(data);
    } catch (err) {
      return this.replyInvalidPayload(option, err);
    }
    const exp = this.registry.lookup(request.name);
    if (!exp) return this.replyError(option, OptionReply.ERR_UNKNOWN, unknownExportMessage(request.name, this.registry));
    const flags = this.transmissionFlags(exp);
    this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoExport(exp.size, flags)));
    if (request.infoTypes.includes(Info.NAME)) {
      this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoName(exp.name)));
    }
    if (request.infoTypes.includes(Info.DESCRIPTION) && exp.description !== '') {
      this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoDescription(exp.description)));
    }
    this.send(encodeOptionReply(option, OptionReply.INFO, encodeInfoBlockSize(exp.blockSize)));
    this.send(encodeOptionReply(option, OptionReply.ACK));
    if (option === Option.GO) this.finish(exp, flags);
  }

  private onStructuredReply(data: Buffer): void {
    const option = Option.STRUCTURED_REPLY;
    if (data.length > 0) return this.replyError(option, OptionReply.ERR_INVALID, 'NBD_OPT_STRUCTURED_REPLY takes no data');
    if (this.structuredReplies) return this.replyError(option, OptionReply.ERR_INVALID, 'structured replies are already on');
    this.structuredReplies = true;
    this.send(encodeOptionReply(option, OptionReply.ACK));
  }

  private onMetaContext(option: number, data: Buffer): void {
    const isSet = option === Option.SET_META_CONTEXT;
    // SET replaces the selection even when it fails (spec), so an error leaves none.
    if (isSet) this.metaContexts = undefined;
    if (!this.structuredReplies) {
      return this.replyError(option, OptionReply.ERR_INVALID, 'negotiate NBD_OPT_STRUCTURED_REPLY first');
    }
    let request: MetaContextRequest;
    try {
      request = decodeMetaContextRequest(data);
    } catch (err) {
      return this.replyInvalidPayload(option, err);
    }
    const exp = this.registry.lookup(request.exportName);
    if (!exp) return this.replyError(option, OptionReply.ERR_UNKNOWN, unknownExportMessage(request.exportName, this.registry));
    if (isSet) {
      const contexts = contextsSelectedBy(exp.metaContexts, request.queries);
      this.metaContexts = { exportName: exp.name, contexts };
      for (const [id, name] of contexts) {
        this.send(encodeOptionReply(option, OptionReply.META_CONTEXT, encodeMetaContextReplyData(id, name)));
      }
    } else {
      // LIST's context ids are reserved and SHOULD be zero (spec).
      for (const name of contextsListedBy(exp.metaContexts, request.queries)) {
        this.send(encodeOptionReply(option, OptionReply.META_CONTEXT, encodeMetaContextReplyData(0, name)));
      }
    }
    this.send(encodeOptionReply(option, OptionReply.ACK));
  }

  /**
   * The export's flags as this session may see them: DF only with structured
   * replies (spec: MUST be clear otherwise), BLOCK_STAT_PAYLOAD never, as
   * extended headers are not negotiated.
   */
  private transmissionFlags(exp: ExportDescriptor): number {
    let flags = exp.transmissionFlags & ~TransmissionFlag.BLOCK_STAT_PAYLOAD;
    if (!this.structuredReplies) flags &= ~TransmissionFlag.SEND_DF;
    return flags;
  }

  private finish(exp: ExportDescriptor, transmissionFlags: number): void {
    const selection = this.metaContexts;
    // Block status is only allowed for the export the contexts were selected on (spec: NBD_OPT_SET_META_CONTEXT).
    const metaContexts = selection && selection.exportName === exp.name ? selection.contexts : new Map<number, string>();
    const session: NegotiatedSession = {
      export: { ...exp, transmissionFlags },
      structuredReplies: this.structuredReplies,
      extendedHeaders: false,
      metaContexts,
      leftover: this.queue.takeAll(),
    };
    this.phase = { name: 'finished', outcome: 'done' };
    this.events.push({ type: 'done', session });
  }

  private replyInvalidPayload(option: number, err: unknown): void {
    if (!(err instanceof OptionPayloadError)) throw err;
    this.replyError(option, OptionReply.ERR_INVALID, `${nameOf(Option, option)}: ${err.message}`);
  }

  private replyError(option: number, replyType: number, message: string): void {
    this.send(encodeOptionReply(option, replyType, encodeTextTruncated(message)));
  }

  private send(data: Buffer): void {
    this.events.push({ type: 'send', data });
  }

  private close(reason: string): void {
    this.queue.skip(this.queue.length);
    this.phase = { name: 'finished', outcome: 'closed' };
    this.events.push({ type: 'close', reason });
  }
}

/** Names what there is, so that a person reading the client's error knows what to ask for. */
function unknownExportMessage(name: string, registry: ExportRegistry): string {
  const names = registry.list().map((e) => `"${e.name}"`);
  const offer = names.length === 0 ? 'this server has no exports now' : `its exports: ${names.join(', ')}`;
  return name === '' ? `there is no default export; ask for one by name (${offer})` : `no export named "${name}" (${offer})`;
}
