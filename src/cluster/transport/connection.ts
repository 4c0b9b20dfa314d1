/**
 * One authenticated connection to a peer: it owns the socket once the handshake is done,
 * writes queued frames in batches, reads frames, replies to pings and measures round trips.
 *
 * Writing: items are queued (outbound.ts) and written once per event-loop turn, from a
 * setImmediate, so everything the node sends in one turn goes out in one socket write (cork
 * around the rare multi-chunk batch). Bulk data is handed to the socket only while the socket
 * buffers less than `socketWindowBytes`. The rest waits in the queue for 'drain', so control
 * frames do not queue behind megabytes of bulk data.
 *
 * Reading: frames go through `Inbound`; items go to the transport. A ProtocolError closes the
 * connection and nothing else happens: the node goes on serving its other peers.
 *
 * Invariant: after `close`, nothing is written or delivered, and `onClose` ran exactly once.
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { PackedItem } from './codec.js';
import {
  encodeFrame,
  type FrameDecoder,
  FrameType,
  MAX_FRAME_PAYLOAD_BYTES,
  ProtocolError,
} from './frame.js';
import { Inbound, type Lane, PING_PAYLOAD_BYTES } from './inbound.js';
import type { LogLimiter } from './log-limiter.js';
import type { TransportLimits } from './options.js';
import { OutboundQueue } from './outbound.js';
import type { TransportCounters } from './stats.js';

/** Weight of a new round-trip sample in the smoothed value, as in TCP's SRTT. */
const RTT_SAMPLE_WEIGHT = 1 / 8;

export interface ConnectionEvents {
  /** A complete item arrived; may throw ProtocolError, which closes the connection. */
  onItem(connection: PeerConnection, lane: Lane, payload: Buffer): void;
  /** Budget may have been freed: queued data moved on to the socket or the kernel. */
  onWritable(connection: PeerConnection): void;
  /** The connection closed; `unstartedTags` are the queued requests none of whose bytes left. */
  onClose(connection: PeerConnection, reason: string, unstartedTags: Set<number>): void;
}

export class PeerConnection {
  readonly #queue: OutboundQueue;
  readonly #inbound: Inbound;
  #flushScheduled = false;
  #closed = false;
  /** performance.now() of the last bytes received. */
  lastReceivedAt = performance.now();
  /** Smoothed ping round-trip time; null before the first pong. */
  rttMs: number | null = null;
  #pingSequence = 0;
  #pingSentAt = 0;
  #pingOutstanding = false;

  constructor(
    readonly peerId: string,
    readonly socket: Socket,
    readonly decoder: FrameDecoder,
    readonly limits: TransportLimits,
    readonly counters: TransportCounters,
    /** Rate-limited log for protocol errors, which a broken peer can repeat at will. */
    readonly warnings: LogLimiter,
    readonly events: ConnectionEvents,
  ) {
    this.#queue = new OutboundQueue(limits.fragmentBytes, counters);
    this.#inbound = new Inbound(limits.maxMessageBytes, counters, {
      onItem: (lane, payload) => this.events.onItem(this, lane, payload),
      onPing: (payload) => this.#onPing(payload),
      onPong: (payload) => this.#onPong(payload),
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes counted against the budget: queued here plus buffered in the socket. */
  get usedBytes(): number {
    return this.#queue.queuedBytes + this.socket.writableLength;
  }

  /**
   * Bytes a new control frame waits behind: queued control frames plus the socket's buffer.
   * Queued bulk data does not count, because control frames overtake it.
   */
  get controlUsedBytes(): number {
    return this.#queue.controlQueuedBytes + this.socket.writableLength;
  }

  /** Returns whether the budget admits another item on `lane`; control may use the reserve. */
  admits(lane: Lane): boolean {
    const { budgetBytes, controlReserveBytes } = this.limits;
    if (lane === 'bulk') return this.usedBytes < budgetBytes;
    return this.controlUsedBytes < budgetBytes + controlReserveBytes;
  }

  /** Takes over the socket from the handshake and processes what the peer already sent. */
  start(): void {
    this.socket.on('data', this.#onData);
    this.socket.on('drain', this.#onDrain);
    this.socket.on('end', () => this.close('peer ended the connection'));
    this.socket.on('close', () => this.close('connection closed'));
    this.socket.on('error', (error) => this.close(`socket error: ${error.message}`));
    this.decoder.maxPayloadBytes = MAX_FRAME_PAYLOAD_BYTES;
    this.#guard(() => this.decoder.resume(this.#inbound.onFrame));
    if (!this.#closed) this.socket.resume();
  }

  enqueueItem(lane: Lane, packed: PackedItem, tag: number): void {
    if (this.#closed) return;
    if (lane === 'control') this.#queue.pushControlItem(packed, tag);
    else this.#queue.pushBulkItem(packed, tag);
    this.#scheduleFlush();
  }

  /** Removes a queued request none of whose bytes were written; returns whether it did. */
  removeUnstarted(tag: number): boolean {
    return this.#queue.removeUnstarted(tag);
  }

  /** Sends a liveness ping; a pong updates `rttMs`. */
  sendPing(now: number): void {
    if (this.#closed) return;
    this.#pingSequence = (this.#pingSequence + 1) >>> 0;
    this.#pingSentAt = now;
    this.#pingOutstanding = true;
    const payload = Buffer.allocUnsafe(PING_PAYLOAD_BYTES);
    payload.writeUInt32BE(this.#pingSequence, 0);
    this.#queue.pushControlFrame(encodeFrame(FrameType.ping, payload));
    this.counters.pingsSent += 1;
    this.#scheduleFlush();
  }

  /** Closes the socket and drops everything queued. Safe to call more than once. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.decoder.stop();
    const unstartedTags = this.#queue.clear();
    this.socket.destroy();
    this.events.onClose(this, reason, unstartedTags);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.lastReceivedAt = performance.now();
    this.#guard(() => this.decoder.push(chunk));
  };

  readonly #onDrain = (): void => {
    if (this.#queue.hasBulk) this.#flush();
    else this.events.onWritable(this);
  };

  /** Runs a receive step; a ProtocolError closes the connection, anything else is a bug. */
  #guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.counters.protocolErrors += 1;
      this.warnings.warn(
        { peer: this.peerId, err: error.message },
        'closing connection: protocol error',
      );
      this.close(`protocol error: ${error.message}`);
    }
  }

  #onPing(payload: Buffer): void {
    if (!this.admits('control')) return;
    this.#queue.pushControlFrame(encodeFrame(FrameType.pong, payload));
    this.counters.pongsSent += 1;
    this.#scheduleFlush();
  }

  #onPong(payload: Buffer): void {
    if (!this.#pingOutstanding || payload.readUInt32BE(0) !== this.#pingSequence) return;
    this.#pingOutstanding = false;
    const sample = performance.now() - this.#pingSentAt;
    this.rttMs =
      this.rttMs === null ? sample : this.rttMs + (sample - this.rttMs) * RTT_SAMPLE_WEIGHT;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushFromImmediate);
  }

  readonly #flushFromImmediate = (): void => {
    this.#flushScheduled = false;
    this.#flush();
  };

  #flush(): void {
    if (this.#closed) return;
    const window = this.limits.socketWindowBytes;
    const allowance = Math.max(0, window - this.socket.writableLength);
    const chunks = this.#queue.drain(allowance);
    this.#write(chunks);
    // Past the window, a write returned false, so 'drain' will continue the bulk lane. Below
    // it (possible with a small fragment size) no 'drain' comes, so flush again next turn.
    if (this.#queue.hasBulk && this.socket.writableLength < window) this.#scheduleFlush();
    this.events.onWritable(this);
  }

  #write(chunks: Buffer[]): void {
    if (chunks.length === 0) return;
    this.counters.socketWrites += 1;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]!);
      return;
    }
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
  }
}
