/**
 * The requester's side of request/response: the table of requests waiting for a reply, their
 * timeouts and abort signals, and how each failure is classified. A request counts as
 * `not-sent` only while none of its bytes left the connection's queue, which the queue
 * tracks. From then on a failure is `maybe-delivered`.
 *
 * Invariant: every promise returned by `add` settles exactly once, and a settled request is no
 * longer in the table and has no timer and no abort listener left.
 */
import type { PeerConnection } from './connection.js';
import { type Delivery, RequestError, type RequestFailure } from './errors.js';
import type { TransportCounters } from './stats.js';

interface PendingRequest {
  readonly id: number;
  readonly peer: string;
  readonly connection: PeerConnection;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: RequestError) => void;
  readonly timer: NodeJS.Timeout;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

export class PendingRequests {
  readonly #byId = new Map<number, PendingRequest>();
  #lastId = 0;

  constructor(readonly counters: TransportCounters) {}

  get size(): number {
    return this.#byId.size;
  }

  /** Returns a fresh request id: positive, unique within this transport. */
  nextId(): number {
    this.#lastId += 1;
    return this.#lastId;
  }

  /**
   * Registers a request already queued on `connection` under tag `id`, and returns the
   * promise of its reply.
   */
  add(
    id: number,
    connection: PeerConnection,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.#expire(id), timeoutMs);
      const onAbort = (): void => this.#abort(id);
      const pending: PendingRequest = {
        id,
        peer: connection.peerId,
        connection,
        resolve,
        reject,
        timer,
        signal,
        onAbort,
      };
      this.#byId.set(id, pending);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Settles a request with its reply; returns false when no such request waits (late reply). */
  resolve(peer: string, id: number, body: unknown): boolean {
    const pending = this.#take(peer, id);
    if (pending === undefined) return false;
    pending.resolve(body);
    return true;
  }

  /** Fails a request with the peer's error; returns false when no such request waits. */
  failRemotely(peer: string, id: number, reason: string): boolean {
    const pending = this.#take(peer, id);
    if (pending === undefined) return false;
    this.#reject(pending, 'remote-error', 'maybe-delivered', reason);
    return true;
  }

  /** Fails every request that was sent on `connection`, which has closed. */
  failConnection(
    connection: PeerConnection,
    unstartedTags: ReadonlySet<number>,
    failure: RequestFailure,
    reason: string,
  ): void {
    for (const pending of [...this.#byId.values()]) {
      if (pending.connection !== connection) continue;
      this.#byId.delete(pending.id);
      const delivery: Delivery = unstartedTags.has(pending.id) ? 'not-sent' : 'maybe-delivered';
      this.#reject(pending, failure, delivery, reason);
    }
  }

  #take(peer: string, id: number): PendingRequest | undefined {
    const pending = this.#byId.get(id);
    if (pending === undefined || pending.peer !== peer) return undefined;
    this.#byId.delete(id);
    this.#release(pending);
    return pending;
  }

  #expire(id: number): void {
    const pending = this.#byId.get(id);
    if (pending === undefined) return;
    this.#byId.delete(id);
    this.counters.requests.timedOut += 1;
    this.#rejectUnlessUnsent(pending, 'timeout', 'no reply in time');
  }

  #abort(id: number): void {
    const pending = this.#byId.get(id);
    if (pending === undefined) return;
    this.#byId.delete(id);
    this.#rejectUnlessUnsent(pending, 'aborted', 'aborted by the caller');
  }

  /** Rejects `pending`, withdrawing it from the queue when none of it was written. */
  #rejectUnlessUnsent(pending: PendingRequest, failure: RequestFailure, reason: string): void {
    const withdrawn = pending.connection.removeUnstarted(pending.id);
    this.#reject(pending, failure, withdrawn ? 'not-sent' : 'maybe-delivered', reason);
  }

  #reject(
    pending: PendingRequest,
    failure: RequestFailure,
    delivery: Delivery,
    reason: string,
  ): void {
    this.#release(pending);
    this.counters.requests.failed += 1;
    pending.reject(new RequestError(failure, delivery, pending.peer, reason));
  }

  #release(pending: PendingRequest): void {
    clearTimeout(pending.timer);
    pending.signal?.removeEventListener('abort', pending.onAbort);
  }
}
