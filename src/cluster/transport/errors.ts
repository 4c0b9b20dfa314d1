/**
 * Typed errors of the transport's public API. `RequestError` states whether a request surely
 * never left this node, so the requester may retry it anywhere, or may have been delivered.
 * In that case the outcome is unknown, and the requester may retry only with the same request
 * id, so that the receiver can recognise a duplicate.
 */

export type RequestFailure =
  /** The peer is unknown or has no authenticated connection. */
  | 'peer-unavailable'
  /** The connection's byte budget was used up. */
  | 'budget-exhausted'
  /** No reply within `timeoutMs`. */
  | 'timeout'
  /** The connection closed before the reply arrived. */
  | 'connection-closed'
  /** The peer's request handler threw or rejected; `message` has its reason. */
  | 'remote-error'
  /** The transport is stopping. */
  | 'stopped'
  /** The caller's AbortSignal fired. */
  | 'aborted';

/** `not-sent`: surely never left this node. `maybe-delivered`: the peer may have processed it. */
export type Delivery = 'not-sent' | 'maybe-delivered';

export class RequestError extends Error {
  override readonly name = 'RequestError';

  constructor(
    readonly failure: RequestFailure,
    readonly delivery: Delivery,
    readonly peer: string,
    detail: string,
  ) {
    super(`request to ${peer} failed (${failure}, ${delivery}): ${detail}`);
  }

  /** True when the request surely never left, so it may be sent elsewhere. */
  get notSent(): boolean {
    return this.delivery === 'not-sent';
  }
}

/**
 * A message larger than the lane allows: over `fragmentBytes` on the control lane, over
 * `maxMessageBytes` on the bulk lane. This is a caller's bug (the caller must cap what it
 * batches), so `send` throws it rather than returning false.
 */
export class MessageTooLargeError extends Error {
  override readonly name = 'MessageTooLargeError';

  constructor(
    readonly sizeBytes: number,
    readonly limitBytes: number,
    lane: string,
  ) {
    super(`message of ${sizeBytes} bytes exceeds the ${lane} lane's limit of ${limitBytes} bytes`);
  }
}

/** `whenWritable` cannot complete: the transport stopped or the peer was removed. */
export class PeerUnavailableError extends Error {
  override readonly name = 'PeerUnavailableError';
}
