/**
 * The peer transport: the API the cluster layer calls. One `Transport` per node.
 *
 *   const transport = new Transport({ nodeId: 'n1', listen: '127.0.0.1:6984',
 *     peers: { n2: '127.0.0.1:6985', n3: '127.0.0.1:6986' }, secret, logger });
 *   transport.onMessage((from, message, lane) => ...);
 *   transport.onRequest(async (from, payload) => reply);
 *   transport.on('peer-down', (peer, reason) => ...);
 *   await transport.start();
 *   transport.send('n2', 'control', { group, vote });          // false: dropped, counted
 *   const reply = await transport.request('n2', write, { timeoutMs: 5000 });
 *
 * Contract:
 * - `send` never blocks and never throws for a peer's state: it returns false when the message
 *   was dropped (peer unknown or not connected, budget used up). Messages on one lane arrive in
 *   the order sent, as long as the connection lives; nothing is resent after a reconnect.
 * - Control lane: small messages (at most `fragmentBytes` encoded) that bulk data cannot delay
 *   by more than `socketWindowBytes`. Bulk lane: anything up to `maxMessageBytes`.
 * - Messages are encoded with msgpackr at `send`, so the caller may reuse the object right
 *   after. Binary data must be Uint8Array; it arrives as Buffer. Maps arrive as plain objects.
 * - Handlers run synchronously on the socket's read path; a throw is logged and counted, and
 *   for a request it becomes a `remote-error` at the requester.
 * - `peer-down` fires at once when a connection closes and within `livenessTimeoutMs` plus one
 *   ping interval when a peer goes silent; `peer-up` fires when a connection authenticates.
 */
export { reconnectDelayMs } from './backoff.js';
export {
  type Delivery,
  MessageTooLargeError,
  PeerUnavailableError,
  RequestError,
  type RequestFailure,
} from './errors.js';
export type { HandshakeFailure } from './handshake-session.js';
export type { Lane } from './inbound.js';
export type { TransportTls } from './options.js';
export {
  defaultLimits,
  defaultTiming,
  MIN_SECRET_BYTES,
  type PeerAddresses,
  type SocketAddress,
  TransportConfigError,
  type TransportLimits,
  type TransportOptions,
  type TransportTiming,
} from './options.js';
export type { RequestHandler } from './request-server.js';
export type { DropStats, LaneStats, PeerStats, RequestStats, TransportStats } from './stats.js';
export {
  type MessageHandler,
  type RequestOptions,
  Transport,
  type TransportEvents,
} from './transport.js';
