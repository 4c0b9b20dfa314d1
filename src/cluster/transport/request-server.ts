/**
 * The receiver's side of request/response: runs the registered request handler and sends its
 * result, or the reason it failed, back on the connection the request came on. The reply
 * takes the control lane when it fits in one fragment, so it does not wait behind bulk data,
 * and the bulk lane otherwise.
 *
 * A reply is dropped when its connection closed meanwhile (the requester has already failed
 * the request as `connection-closed`) or when the budget is used up (the requester times out).
 * Both outcomes are `maybe-delivered` at the requester, which retries with the same id.
 */
import type { Logger } from '../../util/log.js';
import { itemBytes, type PackedItem, packFailure, packResponse } from './codec.js';
import type { PeerConnection } from './connection.js';
import type { Lane } from './inbound.js';
import type { LogLimiter } from './log-limiter.js';
import type { TransportLimits } from './options.js';
import { NO_TAG } from './outbound.js';
import type { TransportCounters } from './stats.js';

/** Maximum length of the reason sent back for a failed request, in UTF-16 code units. */
const MAX_FAILURE_REASON_CHARS = 1000;

/**
 * Serves a request sent with `request`; its return value (or the value its promise resolves
 * to) is the reply. A throw or rejection reaches the requester as a `remote-error`.
 */
export type RequestHandler = (from: string, payload: unknown) => unknown;

export class RequestServer {
  handler: RequestHandler | null = null;

  constructor(
    readonly nodeId: string,
    readonly limits: Readonly<TransportLimits>,
    readonly counters: TransportCounters,
    readonly logger: Logger,
    /** Rate-limited log for handler errors. */
    readonly errors: LogLimiter,
  ) {}

  /** Runs the handler for request `id` from `connection`'s peer and queues the reply. */
  serve(connection: PeerConnection, id: number, payload: unknown): void {
    const handler = this.handler;
    if (handler === null) {
      this.counters.dropped.noHandler += 1;
      this.#reply(connection, id, packFailure(id, `no request handler on ${this.nodeId}`));
      return;
    }
    let result: unknown;
    try {
      result = handler(connection.peerId, payload);
    } catch (error) {
      this.#replyWithError(connection, id, error);
      return;
    }
    if (isPromiseLike(result)) {
      result.then(
        (value) => this.#replyWithValue(connection, id, value),
        (error: unknown) => this.#replyWithError(connection, id, error),
      );
    } else {
      this.#replyWithValue(connection, id, result);
    }
  }

  #replyWithValue(connection: PeerConnection, id: number, value: unknown): void {
    let packed: PackedItem;
    try {
      packed = packResponse(id, value);
    } catch (error) {
      this.#replyWithError(connection, id, error);
      return;
    }
    if (itemBytes(packed) > this.limits.maxMessageBytes) {
      const reason = `reply of ${itemBytes(packed)} bytes exceeds maxMessageBytes`;
      this.#replyWithError(connection, id, new Error(reason));
      return;
    }
    this.#reply(connection, id, packed);
  }

  #replyWithError(connection: PeerConnection, id: number, error: unknown): void {
    this.counters.handlerErrors += 1;
    this.errors.error({ peer: connection.peerId, requestId: id, err: error }, 'request failed');
    const reason = error instanceof Error ? error.message : String(error);
    this.#reply(connection, id, packFailure(id, reason.slice(0, MAX_FAILURE_REASON_CHARS)));
  }

  #reply(connection: PeerConnection, id: number, packed: PackedItem): void {
    if (connection.closed) return;
    const lane: Lane = itemBytes(packed) <= this.limits.fragmentBytes ? 'control' : 'bulk';
    if (!connection.admits(lane)) {
      this.counters.dropped.budget += 1;
      this.logger.debug({ peer: connection.peerId, requestId: id }, 'reply dropped: budget');
      return;
    }
    connection.enqueueItem(lane, packed, NO_TAG);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
