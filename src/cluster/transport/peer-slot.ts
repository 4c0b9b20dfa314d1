/**
 * The per-peer state of a transport: its address, whether this node dials it, the current
 * authenticated connection, the dial in progress or the reconnect timer, and the writers
 * waiting in `whenWritable` for budget. The transport drives the state changes. This module
 * only keeps the fields consistent and settles the waiters.
 *
 * Invariant: at most one of `dialing` and `reconnectTimer` is set, and neither is set while
 * `connection` is open on the dialing side.
 */
import type { PeerConnection } from './connection.js';
import type { HandshakeHandle } from './handshake-session.js';
import type { SocketAddress } from './options.js';

interface WritableWaiter {
  resolve: () => void;
  reject: (error: unknown) => void;
  signal: AbortSignal | undefined;
  onAbort: () => void;
}

export class PeerSlot {
  connection: PeerConnection | null = null;
  /** The outgoing handshake in progress, if any. */
  dialing: HandshakeHandle | null = null;
  reconnectTimer: NodeJS.Timeout | null = null;
  /** Failed dial attempts since the last successful handshake. */
  attempt = 0;
  #waiters: WritableWaiter[] = [];

  constructor(
    readonly peerId: string,
    public address: SocketAddress,
    /** Whether this node dials the peer, because its own id sorts first. */
    readonly dials: boolean,
  ) {}

  /** Returns whether the peer is connected and the budget admits another bulk item. */
  get writable(): boolean {
    return this.connection?.admits('bulk') === true;
  }

  /** Resolves when `writable` holds; rejects with the signal's reason when it aborts. */
  waitWritable(signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.writable) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter: WritableWaiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          this.#waiters = this.#waiters.filter((other) => other !== waiter);
          reject(signal?.reason);
        },
      };
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Resolves every waiter if the peer is writable now. */
  notifyWritable(): void {
    if (this.#waiters.length === 0 || !this.writable) return;
    for (const waiter of this.#takeWaiters()) waiter.resolve();
  }

  /** Rejects every waiter with `error`. */
  rejectWaiters(error: Error): void {
    for (const waiter of this.#takeWaiters()) waiter.reject(error);
  }

  /** Stops the dial in progress or the pending reconnect, if any. */
  cancelDialing(): void {
    if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const dialing = this.dialing;
    this.dialing = null;
    dialing?.cancel();
  }

  #takeWaiters(): WritableWaiter[] {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter.signal?.removeEventListener('abort', waiter.onAbort);
    return waiters;
  }
}
