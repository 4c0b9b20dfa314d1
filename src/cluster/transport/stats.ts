/**
 * Transport counters. Each transport has one mutable `TransportCounters` of plain number
 * fields, so the hot path increments them without allocating. `Transport.stats()` copies it
 * into a `TransportStats` snapshot together with per-peer figures.
 */
import type { HandshakeFailure } from './handshake-session.js';

/** Counters of one lane. Bytes include frame headers; a ping or pong is a control frame. */
export interface LaneStats {
  framesSent: number;
  bytesSent: number;
  /** Items (messages, requests, replies) handed to this lane. */
  itemsSent: number;
  framesReceived: number;
  bytesReceived: number;
  itemsReceived: number;
}

/** Messages not sent, or received and not delivered, by reason. */
export interface DropStats {
  /** `send` to a known peer with no authenticated connection. */
  notConnected: number;
  /** `send` to an id that is not among the peers. */
  unknownPeer: number;
  /** `send` while the connection's byte budget was used up. */
  budget: number;
  /** A received message or request while no handler was registered. */
  noHandler: number;
  /** A reply that arrived after its request had failed or timed out. */
  lateReply: number;
}

export interface RequestStats {
  sent: number;
  received: number;
  /** Requests that failed on this node's side, by any reason (timeout, closed, not sent...). */
  failed: number;
  timedOut: number;
}

export interface TransportCounters {
  control: LaneStats;
  bulk: LaneStats;
  /** Batches written to sockets: one per connection per event-loop turn with data to send. */
  socketWrites: number;
  /** Liveness pings sent: one per connection per ping interval, whatever the traffic. */
  pingsSent: number;
  pongsSent: number;
  dropped: DropStats;
  requests: RequestStats;
  /** Authenticated connections opened and closed since start. */
  connectionsOpened: number;
  connectionsClosed: number;
  handshakeFailures: Record<HandshakeFailure, number>;
  /** Outgoing connections that failed before TCP connected (refused, unreachable). */
  dialFailures: number;
  /** Authenticated connections closed for a malformed or oversized frame. */
  protocolErrors: number;
  /** Errors thrown by this node's message or request handlers. */
  handlerErrors: number;
}

export interface PeerStats {
  address: string;
  connected: boolean;
  /** Smoothed ping round-trip time, or null before the first pong. */
  rttMs: number | null;
  /** Bytes queued in the transport plus bytes buffered in the socket. */
  budgetUsedBytes: number;
}

export interface TransportStats extends TransportCounters {
  /** Authenticated connections open now. */
  connections: number;
  /** Inbound connections in the handshake now. */
  pendingHandshakes: number;
  /** Sum of `budgetUsedBytes` over the peers. */
  budgetUsedBytes: number;
  peers: Record<string, PeerStats>;
}

function createLaneStats(): LaneStats {
  return {
    framesSent: 0,
    bytesSent: 0,
    itemsSent: 0,
    framesReceived: 0,
    bytesReceived: 0,
    itemsReceived: 0,
  };
}

export function createCounters(): TransportCounters {
  return {
    control: createLaneStats(),
    bulk: createLaneStats(),
    socketWrites: 0,
    pingsSent: 0,
    pongsSent: 0,
    dropped: { notConnected: 0, unknownPeer: 0, budget: 0, noHandler: 0, lateReply: 0 },
    requests: { sent: 0, received: 0, failed: 0, timedOut: 0 },
    connectionsOpened: 0,
    connectionsClosed: 0,
    handshakeFailures: {
      timeout: 0,
      closed: 0,
      malformed: 0,
      'version-mismatch': 0,
      'bad-proof': 0,
      'unknown-peer': 0,
      'wrong-direction': 0,
      'unexpected-peer': 0,
      cancelled: 0,
      'too-many-pending': 0,
      tls: 0,
    },
    dialFailures: 0,
    protocolErrors: 0,
    handlerErrors: 0,
  };
}

/** Returns a deep copy, so a snapshot does not change under its reader. */
export function copyCounters(counters: TransportCounters): TransportCounters {
  return {
    ...counters,
    control: { ...counters.control },
    bulk: { ...counters.bulk },
    dropped: { ...counters.dropped },
    requests: { ...counters.requests },
    handshakeFailures: { ...counters.handshakeFailures },
  };
}
