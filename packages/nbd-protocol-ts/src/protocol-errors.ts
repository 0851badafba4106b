/**
 * The peer broke the wire format (bad magic, impossible framing). The stream
 * can no longer be trusted to be in sync, so the only safe reaction is to
 * disconnect.
 */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/**
 * An option's payload is malformed. Unlike a ProtocolError the framing is
 * intact (the option header said how long the payload is), so the server can
 * answer NBD_REP_ERR_INVALID with this message and keep haggling.
 */
export class OptionPayloadError extends Error {
  override readonly name = 'OptionPayloadError';
}
