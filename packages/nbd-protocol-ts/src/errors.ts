import { Errno, type ErrnoValue, nameOf } from './constants.js';

/**
 * An error that a command fails with on the wire. Every layer under the server
 * (views, remapping engine) throws this, so the errno the client sees is decided
 * where the cause is known, not guessed at the socket.
 */
export class NbdError extends Error {
  override readonly name = 'NbdError';
  constructor(
    readonly errno: ErrnoValue,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get errnoName(): string {
    return nameOf(Errno, this.errno);
  }
}
