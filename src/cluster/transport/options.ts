/**
 * Transport configuration: the options a node passes to `new Transport(...)`, their defaults,
 * and validation. Invalid options throw `TransportConfigError` at construction, so a node with
 * a bad configuration never starts. Peer addresses are `host:port` strings (`[v6]:port` for
 * IPv6). The node's own id may appear among the peers and is ignored, so callers can pass the
 * whole membership.
 */
import type { Logger } from '../../util/log.js';
import { MAX_FRAME_PAYLOAD_BYTES, MIN_FRAGMENT_BYTES } from './frame.js';
import { MAX_NODE_ID_BYTES } from './handshake.js';

const KIB = 1024;
const MIB = 1024 * KIB;

/** The shortest cluster secret accepted: 128 bits. */
export const MIN_SECRET_BYTES = 16;

/** Byte limits of one node's side of every connection. All nodes should use the same values. */
export interface TransportLimits {
  /**
   * Largest encoded message, sent or received. Default 65 MiB: Divan's 64 MiB request body
   * plus 1 MiB for the request envelope. A received message over it closes the connection.
   */
  maxMessageBytes: number;
  /** Size of the fragments a large bulk message is cut into; also the largest control message. */
  fragmentBytes: number;
  /**
   * Byte budget per connection: bytes queued in the transport plus bytes buffered in the
   * socket. A bulk message is accepted while use is below the budget, so use never exceeds
   * `budgetBytes + maxMessageBytes`.
   */
  budgetBytes: number;
  /** Extra room above the budget that only control messages may use. */
  controlReserveBytes: number;
  /**
   * Bulk bytes handed to the socket ahead of time. A control message waits behind at most this
   * much bulk data (plus what the kernel buffers), however long the bulk queue is.
   */
  socketWindowBytes: number;
  /** Inbound connections allowed in the handshake at once; more are closed at once. */
  maxPendingHandshakes: number;
}

/** Timers of the transport, in milliseconds. */
export interface TransportTiming {
  /** Time a connection has to complete the handshake (for the dialer, TCP connect included). */
  handshakeTimeoutMs: number;
  /** Interval between pings on each connection. */
  pingIntervalMs: number;
  /** A connection that received nothing for this long is closed and its peer reported down. */
  livenessTimeoutMs: number;
  /** First reconnect delay after a failure; it doubles with each further failure. */
  reconnectInitialDelayMs: number;
  /**
   * Cap of the reconnect delay. Only the lower id dials, so after the other node restarts this
   * cap bounds how long the two stay apart: a failover in that time loses the messages between
   * them. A dial to a node that is down costs one refused connection.
   */
  reconnectMaxDelayMs: number;
}

export const defaultLimits: Readonly<TransportLimits> = Object.freeze({
  maxMessageBytes: 65 * MIB,
  fragmentBytes: 64 * KIB,
  budgetBytes: 16 * MIB,
  controlReserveBytes: 1 * MIB,
  socketWindowBytes: 256 * KIB,
  maxPendingHandshakes: 64,
});

export const defaultTiming: Readonly<TransportTiming> = Object.freeze({
  handshakeTimeoutMs: 5000,
  pingIntervalMs: 1000,
  livenessTimeoutMs: 3000,
  reconnectInitialDelayMs: 50,
  reconnectMaxDelayMs: 500,
});

/** Peer ids to `host:port` addresses. */
export type PeerAddresses = ReadonlyMap<string, string> | Readonly<Record<string, string>>;

export interface TransportOptions {
  /** This node's id, such as `n1`: 1 to 255 bytes of UTF-8. */
  nodeId: string;
  /** Address to listen on, `host:port`; port 0 picks a free port (see `listenAddress`). */
  listen: string;
  peers: PeerAddresses;
  /** The cluster secret shared by all nodes; at least 16 bytes. It never crosses the wire. */
  secret: Uint8Array;
  limits?: Partial<TransportLimits>;
  timing?: Partial<TransportTiming>;
  /** The logger, bound to the node's context (`node`). The transport adds `component` to it. */
  logger: Logger;
  /** Encrypt every connection with TLS; absent means plain TCP. */
  tls?: TransportTls;
}

/** PEM key, certificate chain and CA of the peer port's TLS. */
export interface TransportTls {
  key: Buffer;
  cert: Buffer;
  /** The CA that signed every node's certificate; absent means `cert` (one shared certificate). */
  ca?: Buffer;
}

export interface SocketAddress {
  host: string;
  port: number;
}

/** A configuration the transport cannot run with. */
export class TransportConfigError extends Error {
  override readonly name = 'TransportConfigError';
}

const MAX_PORT = 65535;

/** Parses `host:port` or `[v6]:port`. Throws TransportConfigError when it is invalid. */
export function parseAddress(address: string): SocketAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  if (match === null) {
    throw new TransportConfigError(`invalid address '${address}': expected host:port`);
  }
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  if (port > MAX_PORT) {
    throw new TransportConfigError(`invalid port in '${address}': must be at most ${MAX_PORT}`);
  }
  return { host, port };
}

/** Checks a node id and returns it. */
export function validateNodeId(nodeId: string): string {
  const bytes = Buffer.byteLength(nodeId, 'utf8');
  if (bytes === 0 || bytes > MAX_NODE_ID_BYTES) {
    throw new TransportConfigError(
      `invalid node id '${nodeId}': must be 1 to ${MAX_NODE_ID_BYTES} bytes of UTF-8`,
    );
  }
  return nodeId;
}

/** Returns the peers as a map of id to parsed address, leaving out `selfId`. */
export function resolvePeers(peers: PeerAddresses, selfId: string): Map<string, SocketAddress> {
  const entries = peers instanceof Map ? [...peers.entries()] : Object.entries(peers);
  const resolved = new Map<string, SocketAddress>();
  for (const [peerId, address] of entries) {
    validateNodeId(peerId);
    if (peerId !== selfId) resolved.set(peerId, parseAddress(address));
  }
  return resolved;
}

/** Merges `limits` over the defaults and checks them. */
export function resolveLimits(limits: Partial<TransportLimits> = {}): TransportLimits {
  const resolved = { ...defaultLimits, ...limits };
  requirePositiveInteger(resolved, 'maxMessageBytes');
  requirePositiveInteger(resolved, 'budgetBytes');
  requirePositiveInteger(resolved, 'controlReserveBytes');
  requirePositiveInteger(resolved, 'socketWindowBytes');
  requirePositiveInteger(resolved, 'maxPendingHandshakes');
  const { fragmentBytes } = resolved;
  if (
    !Number.isInteger(fragmentBytes) ||
    fragmentBytes < MIN_FRAGMENT_BYTES ||
    fragmentBytes > MAX_FRAME_PAYLOAD_BYTES
  ) {
    throw new TransportConfigError(
      `invalid fragmentBytes ${fragmentBytes}: must be an integer from ${MIN_FRAGMENT_BYTES} to ${MAX_FRAME_PAYLOAD_BYTES}`,
    );
  }
  if (resolved.maxMessageBytes < fragmentBytes) {
    throw new TransportConfigError(
      `invalid maxMessageBytes ${resolved.maxMessageBytes}: must be at least fragmentBytes (${fragmentBytes})`,
    );
  }
  return resolved;
}

/** Merges `timing` over the defaults and checks them. */
export function resolveTiming(timing: Partial<TransportTiming> = {}): TransportTiming {
  const resolved = { ...defaultTiming, ...timing };
  requirePositiveInteger(resolved, 'handshakeTimeoutMs');
  requirePositiveInteger(resolved, 'pingIntervalMs');
  requirePositiveInteger(resolved, 'livenessTimeoutMs');
  requirePositiveInteger(resolved, 'reconnectInitialDelayMs');
  requirePositiveInteger(resolved, 'reconnectMaxDelayMs');
  if (resolved.livenessTimeoutMs <= resolved.pingIntervalMs) {
    throw new TransportConfigError(
      `invalid livenessTimeoutMs ${resolved.livenessTimeoutMs}: must exceed pingIntervalMs (${resolved.pingIntervalMs})`,
    );
  }
  if (resolved.reconnectMaxDelayMs < resolved.reconnectInitialDelayMs) {
    throw new TransportConfigError(
      `invalid reconnectMaxDelayMs ${resolved.reconnectMaxDelayMs}: must be at least reconnectInitialDelayMs`,
    );
  }
  return resolved;
}

/** Checks the secret's length and returns a private copy of it. */
export function resolveSecret(secret: Uint8Array): Buffer {
  if (secret.byteLength < MIN_SECRET_BYTES) {
    throw new TransportConfigError(
      `cluster secret too short: ${secret.byteLength} bytes, at least ${MIN_SECRET_BYTES} needed`,
    );
  }
  return Buffer.from(secret);
}

function requirePositiveInteger<T extends object>(values: T, key: keyof T & string): void {
  const value = values[key];
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new TransportConfigError(`invalid ${key} ${String(value)}: must be a positive integer`);
  }
}
