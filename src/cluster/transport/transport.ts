/**
 * The peer transport of one node: one authenticated TCP connection per pair of nodes, carrying
 * the messages of every Raft group, request/response for forwarded client writes, and later
 * snapshot streams. See index.ts for the contract and docs/transport.md for the wire format.
 *
 * Owns: the listening server, one slot per peer (address, connection, dialing, reconnect
 * backoff, writers waiting for budget), the pending requests, the liveness timer, counters.
 * The node whose id sorts lower (JavaScript string order) dials; the other only accepts, so
 * two nodes never race to build two connections. A newly authenticated connection from a peer
 * replaces the old one (the peer restarted or the old socket died silently).
 *
 * With `tls` set, every connection is TLS with both sides presenting a certificate signed by
 * the configured CA; host names are not checked, because a peer's identity is the node id its
 * handshake proof covers. The HMAC handshake runs inside TLS as before.
 *
 * Does not: interpret messages, retry sends (Raft tolerates loss), or persist anything.
 */
import { EventEmitter } from 'node:events';
import {
  connect as connectTcp,
  createServer as createTcpServer,
  type Server,
  type Socket,
} from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as connectTls, createServer as createTlsServer } from 'node:tls';
import { assert } from '../../util/assert.js';
import type { Logger } from '../../util/log.js';
import { reconnectDelayMs } from './backoff.js';
import {
  ItemKind,
  itemBytes,
  type PackedItem,
  packMessage,
  packRequest,
  unpackItem,
} from './codec.js';
import { type ConnectionEvents, PeerConnection } from './connection.js';
import { MessageTooLargeError, PeerUnavailableError, RequestError } from './errors.js';
import type { FrameDecoder } from './frame.js';
import {
  type HandshakeFailure,
  type HandshakeHandle,
  type HandshakeOutcome,
  startAcceptorHandshake,
  startDialerHandshake,
} from './handshake-session.js';
import type { Lane } from './inbound.js';
import { LogLimiter } from './log-limiter.js';
import {
  type PeerAddresses,
  parseAddress,
  resolveLimits,
  resolvePeers,
  resolveSecret,
  resolveTiming,
  type SocketAddress,
  type TransportLimits,
  type TransportOptions,
  type TransportTiming,
  type TransportTls,
  validateNodeId,
} from './options.js';
import { NO_TAG } from './outbound.js';
import { PeerSlot } from './peer-slot.js';
import { type RequestHandler, RequestServer } from './request-server.js';
import { PendingRequests } from './requests.js';
import {
  copyCounters,
  createCounters,
  type PeerStats,
  type TransportCounters,
  type TransportStats,
} from './stats.js';

/** Window of the log rate limits, in milliseconds. */
const LOG_WINDOW_MS = 10_000;
/** Warnings per window about rejected connections and protocol errors. */
const REJECTION_LOGS_PER_WINDOW = 10;
/** Errors per window from throwing message and request handlers. */
const HANDLER_ERROR_LOGS_PER_WINDOW = 10;

export interface TransportEvents {
  /** An authenticated connection to `peer` opened. */
  'peer-up': [peer: string];
  /** The connection to `peer` closed: socket closed, liveness timeout, replaced, or stop. */
  'peer-down': [peer: string, reason: string];
}

/** Receives a message sent with `send`. Runs synchronously on the socket's read path. */
export type MessageHandler = (from: string, message: unknown, lane: Lane) => void;

export interface RequestOptions {
  /** Time to wait for the reply. */
  timeoutMs: number;
  signal?: AbortSignal;
}

type State = 'new' | 'starting' | 'running' | 'stopped';

export class Transport extends EventEmitter<TransportEvents> {
  readonly nodeId: string;
  readonly limits: Readonly<TransportLimits>;
  readonly timing: Readonly<TransportTiming>;
  readonly #secret: Buffer;
  readonly #listen: SocketAddress;
  readonly #logger: Logger;
  readonly #rejections: LogLimiter;
  readonly #handlerErrors: LogLimiter;
  readonly #counters: TransportCounters = createCounters();
  readonly #requests: PendingRequests;
  readonly #requestServer: RequestServer;
  readonly #peers = new Map<string, PeerSlot>();
  readonly #accepting = new Set<HandshakeHandle>();
  readonly #server: Server;
  readonly #tls: TransportTls | undefined;
  #state: State = 'new';
  #livenessTimer: NodeJS.Timeout | null = null;
  #lastTickAt = 0;
  #messageHandler: MessageHandler | null = null;

  constructor(options: TransportOptions) {
    super();
    this.nodeId = validateNodeId(options.nodeId);
    this.limits = Object.freeze(resolveLimits(options.limits));
    this.timing = Object.freeze(resolveTiming(options.timing));
    this.#secret = resolveSecret(options.secret);
    this.#listen = parseAddress(options.listen);
    this.#logger = options.logger.child({ component: 'transport' });
    this.#rejections = new LogLimiter(this.#logger, REJECTION_LOGS_PER_WINDOW, LOG_WINDOW_MS);
    this.#handlerErrors = new LogLimiter(
      this.#logger,
      HANDLER_ERROR_LOGS_PER_WINDOW,
      LOG_WINDOW_MS,
    );
    this.#requests = new PendingRequests(this.#counters);
    this.#requestServer = new RequestServer(
      this.nodeId,
      this.limits,
      this.#counters,
      this.#logger,
      this.#handlerErrors,
    );
    for (const [peerId, address] of resolvePeers(options.peers, this.nodeId)) {
      this.#peers.set(peerId, new PeerSlot(peerId, address, this.nodeId < peerId));
    }
    this.#tls = options.tls;
    this.#server = this.#createServer();
  }

  #createServer(): Server {
    const tls = this.#tls;
    if (tls === undefined) return createTcpServer((socket) => this.#onAccept(socket));
    const server = createTlsServer(
      {
        key: tls.key,
        cert: tls.cert,
        ca: tls.ca ?? tls.cert,
        requestCert: true,
        rejectUnauthorized: true,
        handshakeTimeout: this.timing.handshakeTimeoutMs,
      },
      (socket) => this.#onAccept(socket),
    );
    server.on('tlsClientError', (error, socket) => {
      this.#rejectInbound(`${socket.remoteAddress}:${socket.remotePort}`, 'tls', error.message);
    });
    return server;
  }

  #connect(address: SocketAddress): Socket {
    const tls = this.#tls;
    if (tls === undefined) return connectTcp({ host: address.host, port: address.port });
    return connectTls({
      host: address.host,
      port: address.port,
      key: tls.key,
      cert: tls.cert,
      ca: tls.ca ?? tls.cert,
      // Identity is the handshake's node id; the certificate chain is still verified.
      checkServerIdentity: () => undefined,
    });
  }

  /** The address the server listens on; after `start`, with the port the kernel chose. */
  get listenAddress(): SocketAddress {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') return { ...this.#listen };
    return { host: address.address, port: address.port };
  }

  /** Listens, then starts dialing the peers this node dials. Rejects if it cannot listen. */
  async start(): Promise<void> {
    assert(this.#state === 'new', () => `start called on a ${this.#state} transport`);
    this.#state = 'starting';
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#listen.port, this.#listen.host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    }).catch((error: unknown) => {
      this.#state = 'stopped';
      throw error;
    });
    this.#server.on('error', (error) => this.#logger.error({ err: error }, 'server error'));
    this.#state = 'running';
    this.#lastTickAt = performance.now();
    this.#livenessTimer = setInterval(() => this.#tick(), this.timing.pingIntervalMs);
    this.#livenessTimer.unref();
    this.#logger.info({ address: this.listenAddress }, 'transport listening');
    for (const slot of this.#peers.values()) this.#dial(slot);
  }

  /**
   * Closes every connection and the server. Pending requests fail with `stopped`; writers in
   * `whenWritable` get PeerUnavailableError. A stopped transport cannot start again.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasListening = this.#state !== 'new';
    this.#state = 'stopped';
    if (this.#livenessTimer !== null) clearInterval(this.#livenessTimer);
    for (const handshake of [...this.#accepting]) handshake.cancel();
    for (const slot of this.#peers.values()) this.#shutSlot(slot, 'transport stopped');
    if (wasListening) {
      await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    }
    this.#logger.info('transport stopped');
  }

  /**
   * Replaces the peer list (id to `host:port`; this node's own id is ignored). Connections to
   * removed peers close; a changed address closes the connection and redials when this node
   * dials; new peers are dialed at once.
   */
  setPeers(peers: PeerAddresses): void {
    const next = resolvePeers(peers, this.nodeId);
    for (const [peerId, slot] of [...this.#peers]) {
      if (next.has(peerId)) continue;
      this.#peers.delete(peerId);
      this.#shutSlot(slot, 'peer removed');
    }
    for (const [peerId, address] of next) {
      const slot = this.#peers.get(peerId);
      if (slot === undefined) {
        const created = new PeerSlot(peerId, address, this.nodeId < peerId);
        this.#peers.set(peerId, created);
        this.#dial(created);
      } else if (slot.address.host !== address.host || slot.address.port !== address.port) {
        slot.address = address;
        if (slot.dials) this.#redial(slot, 'peer address changed');
      }
    }
  }

  /** Sets the handler of incoming messages (null removes it; messages are then dropped). */
  onMessage(handler: MessageHandler | null): void {
    this.#messageHandler = handler;
  }

  /** Sets the handler of incoming requests (null removes it; requests then fail remotely). */
  onRequest(handler: RequestHandler | null): void {
    this.#requestServer.handler = handler;
  }

  isConnected(peer: string): boolean {
    return this.#peers.get(peer)?.connection != null;
  }

  connectedPeers(): string[] {
    const connected: string[] = [];
    for (const slot of this.#peers.values())
      if (slot.connection !== null) connected.push(slot.peerId);
    return connected;
  }

  /**
   * Queues `message` for `peer` on `lane` and returns true; it is written within this
   * event-loop turn's batch. Returns false, dropping the message and counting why, when the
   * peer is unknown or not connected or the connection's budget is used up (control messages
   * may also use the control reserve). Throws MessageTooLargeError over the lane's limit.
   * Delivery is not confirmed: a message may still be lost with its connection.
   */
  send(peer: string, lane: Lane, message: unknown): boolean {
    const connection = this.#connectionFor(peer);
    if (connection === null) return false;
    if (!connection.admits(lane)) {
      this.#counters.dropped.budget += 1;
      return false;
    }
    const packed = packMessage(message);
    this.#checkSize(packed, lane);
    connection.enqueueItem(lane, packed, NO_TAG);
    return true;
  }

  /**
   * Resolves once `peer` is connected and its connection's budget has room for another bulk
   * message; waits across reconnects. For senders that must not drop (snapshot streams):
   * `while (!send(...)) await whenWritable(...)`. Rejects with PeerUnavailableError when the
   * peer is removed or the transport stops, and with the signal's reason when it aborts.
   */
  whenWritable(peer: string, signal?: AbortSignal): Promise<void> {
    const slot = this.#peers.get(peer);
    if (slot === undefined || this.#state === 'stopped') {
      return Promise.reject(new PeerUnavailableError(`peer ${peer} is not available`));
    }
    return slot.waitWritable(signal);
  }

  /**
   * Sends `payload` to `peer`'s request handler on the bulk lane and resolves with its reply.
   * Rejects with RequestError, whose `delivery` is `not-sent` when the request surely never
   * left or `maybe-delivered` when the peer may have processed it. Rejects with
   * MessageTooLargeError when the encoded request exceeds `maxMessageBytes`.
   */
  request(peer: string, payload: unknown, options: RequestOptions): Promise<unknown> {
    const unsent = (failure: 'stopped' | 'peer-unavailable' | 'budget-exhausted' | 'aborted') => {
      this.#counters.requests.failed += 1;
      return Promise.reject(
        new RequestError(failure, 'not-sent', peer, `${failure} before sending`),
      );
    };
    if (this.#state === 'stopped') return unsent('stopped');
    if (options.signal?.aborted) return unsent('aborted');
    const connection = this.#peers.get(peer)?.connection ?? null;
    if (connection === null) return unsent('peer-unavailable');
    if (!connection.admits('bulk')) return unsent('budget-exhausted');
    const id = this.#requests.nextId();
    const packed = packRequest(id, payload);
    try {
      this.#checkSize(packed, 'bulk');
    } catch (error) {
      return Promise.reject(error);
    }
    const reply = this.#requests.add(id, connection, options.timeoutMs, options.signal);
    connection.enqueueItem('bulk', packed, id);
    this.#counters.requests.sent += 1;
    return reply;
  }

  /** Returns a snapshot of the counters, with per-peer connection state and budget use. */
  stats(): TransportStats {
    const peers: Record<string, PeerStats> = {};
    let connections = 0;
    let budgetUsedBytes = 0;
    for (const slot of this.#peers.values()) {
      const connection = slot.connection;
      const used = connection?.usedBytes ?? 0;
      if (connection !== null) connections += 1;
      budgetUsedBytes += used;
      peers[slot.peerId] = {
        address: formatAddress(slot.address),
        connected: connection !== null,
        rttMs: connection?.rttMs ?? null,
        budgetUsedBytes: used,
      };
    }
    return {
      ...copyCounters(this.#counters),
      connections,
      pendingHandshakes: this.#accepting.size,
      budgetUsedBytes,
      peers,
    };
  }

  #connectionFor(peer: string): PeerConnection | null {
    const slot = this.#peers.get(peer);
    if (slot === undefined) {
      this.#counters.dropped.unknownPeer += 1;
      return null;
    }
    if (slot.connection === null) this.#counters.dropped.notConnected += 1;
    return slot.connection;
  }

  #checkSize(packed: PackedItem, lane: Lane): void {
    const size = itemBytes(packed);
    const limit = lane === 'control' ? this.limits.fragmentBytes : this.limits.maxMessageBytes;
    if (size > limit) throw new MessageTooLargeError(size, limit, lane);
  }

  // Dialing and accepting.

  #dial(slot: PeerSlot): void {
    if (this.#state !== 'running' || !slot.dials) return;
    if (slot.connection !== null || slot.dialing !== null || slot.reconnectTimer !== null) return;
    const socket = this.#connect(slot.address);
    socket.setNoDelay(true);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
    });
    const handshake = startDialerHandshake({
      socket,
      localId: this.nodeId,
      secret: this.#secret,
      timeoutMs: this.timing.handshakeTimeoutMs,
      expectedPeerId: slot.peerId,
      onDone: (outcome) => this.#onDialed(slot, handshake, outcome, connected),
    });
    slot.dialing = handshake;
  }

  #onDialed(
    slot: PeerSlot,
    handshake: HandshakeHandle,
    outcome: HandshakeOutcome,
    connected: boolean,
  ): void {
    if (slot.dialing !== handshake) {
      // The slot was shut or redialed meanwhile; this socket is no longer wanted.
      if (outcome.ok) outcome.socket.destroy();
      return;
    }
    slot.dialing = null;
    if (outcome.ok) {
      slot.attempt = 0;
      this.#install(slot, outcome.socket, outcome.decoder);
      return;
    }
    if (outcome.failure === 'cancelled') return;
    if (connected) {
      this.#counters.handshakeFailures[outcome.failure] += 1;
      this.#rejections.warn(
        { peer: slot.peerId, failure: outcome.failure, detail: outcome.detail },
        'handshake with peer failed',
      );
    } else {
      this.#counters.dialFailures += 1;
      this.#logger.debug({ peer: slot.peerId, detail: outcome.detail }, 'dial failed');
    }
    this.#scheduleReconnect(slot);
  }

  #scheduleReconnect(slot: PeerSlot): void {
    if (this.#state !== 'running' || this.#peers.get(slot.peerId) !== slot) return;
    if (!slot.dials || slot.reconnectTimer !== null) return;
    const { reconnectInitialDelayMs, reconnectMaxDelayMs } = this.timing;
    const delay = reconnectDelayMs(slot.attempt, reconnectInitialDelayMs, reconnectMaxDelayMs);
    slot.attempt += 1;
    slot.reconnectTimer = setTimeout(() => {
      slot.reconnectTimer = null;
      this.#dial(slot);
    }, delay);
  }

  #redial(slot: PeerSlot, reason: string): void {
    // Closing schedules a reconnect with backoff; cancel it and dial at once instead.
    slot.connection?.close(reason);
    slot.cancelDialing();
    slot.attempt = 0;
    this.#dial(slot);
  }

  /** Closes everything of a slot that is removed or whose transport stops. */
  #shutSlot(slot: PeerSlot, reason: string): void {
    slot.cancelDialing();
    slot.connection?.close(reason);
    slot.rejectWaiters(new PeerUnavailableError(`peer ${slot.peerId} is not available: ${reason}`));
  }

  #onAccept(socket: Socket): void {
    socket.setNoDelay(true);
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.#state !== 'running' || this.#accepting.size >= this.limits.maxPendingHandshakes) {
      socket.on('error', () => {});
      socket.destroy();
      if (this.#state === 'running')
        this.#rejectInbound(remote, 'too-many-pending', 'limit reached');
      return;
    }
    const handshake: HandshakeHandle = startAcceptorHandshake({
      socket,
      localId: this.nodeId,
      secret: this.#secret,
      timeoutMs: this.timing.handshakeTimeoutMs,
      admit: (peerId) => this.#admit(peerId),
      onDone: (outcome) => {
        this.#accepting.delete(handshake);
        if (outcome.ok) {
          const slot = this.#peers.get(outcome.peerId);
          if (slot !== undefined && this.#state === 'running') {
            this.#install(slot, outcome.socket, outcome.decoder);
          } else {
            outcome.socket.destroy();
          }
        } else if (outcome.failure !== 'cancelled') {
          this.#rejectInbound(remote, outcome.failure, outcome.detail);
        }
      },
    });
    this.#accepting.add(handshake);
  }

  #admit(peerId: string): HandshakeFailure | null {
    if (!this.#peers.has(peerId)) return 'unknown-peer';
    // The lower id dials; a dialer with the higher id breaks the rule.
    if (!(peerId < this.nodeId)) return 'wrong-direction';
    return null;
  }

  #rejectInbound(remote: string, failure: HandshakeFailure, detail: string): void {
    this.#counters.handshakeFailures[failure] += 1;
    this.#rejections.warn({ remote, failure, detail }, 'rejected inbound connection');
  }

  // Connections.

  #install(slot: PeerSlot, socket: Socket, decoder: FrameDecoder): void {
    slot.connection?.close('replaced by a new connection');
    const connection = new PeerConnection(
      slot.peerId,
      socket,
      decoder,
      this.limits,
      this.#counters,
      this.#rejections,
      this.#eventsFor(slot),
    );
    slot.connection = connection;
    this.#counters.connectionsOpened += 1;
    this.#logger.info({ peer: slot.peerId, address: formatAddress(slot.address) }, 'peer up');
    this.emit('peer-up', slot.peerId);
    connection.start();
    slot.notifyWritable();
  }

  #eventsFor(slot: PeerSlot): ConnectionEvents {
    return {
      onItem: (connection, lane, payload) => this.#onItem(connection, lane, payload),
      onWritable: () => slot.notifyWritable(),
      onClose: (connection, reason, unstartedTags) =>
        this.#onConnectionClosed(slot, connection, reason, unstartedTags),
    };
  }

  #onConnectionClosed(
    slot: PeerSlot,
    connection: PeerConnection,
    reason: string,
    unstartedTags: Set<number>,
  ): void {
    this.#counters.connectionsClosed += 1;
    const failure = this.#state === 'stopped' ? 'stopped' : 'connection-closed';
    this.#requests.failConnection(connection, unstartedTags, failure, reason);
    if (slot.connection !== connection) return;
    slot.connection = null;
    this.#logger.info({ peer: slot.peerId, reason }, 'peer down');
    this.emit('peer-down', slot.peerId, reason);
    this.#scheduleReconnect(slot);
  }

  /** Pings every connection and closes those silent for longer than the liveness timeout. */
  #tick(): void {
    const now = performance.now();
    // After a stall of the event loop, data may be waiting unread in the sockets: skip the
    // check this once rather than blame the peers for this node's own delay.
    const stalled = now - this.#lastTickAt > 2 * this.timing.pingIntervalMs;
    this.#lastTickAt = now;
    for (const slot of this.#peers.values()) {
      const connection = slot.connection;
      if (connection === null) continue;
      const silentMs = now - connection.lastReceivedAt;
      if (!stalled && silentMs > this.timing.livenessTimeoutMs) {
        connection.close(`nothing received for ${Math.round(silentMs)} ms`);
      } else {
        connection.sendPing(now);
      }
    }
  }

  // Items received.

  #onItem(connection: PeerConnection, lane: Lane, payload: Buffer): void {
    const item = unpackItem(payload);
    const peer = connection.peerId;
    switch (item[0]) {
      case ItemKind.message:
        this.#deliverMessage(peer, item[1], lane);
        return;
      case ItemKind.request:
        this.#counters.requests.received += 1;
        this.#requestServer.serve(connection, item[1], item[2]);
        return;
      case ItemKind.response:
        if (!this.#requests.resolve(peer, item[1], item[2])) this.#counters.dropped.lateReply += 1;
        return;
      case ItemKind.failure:
        if (!this.#requests.failRemotely(peer, item[1], item[2])) {
          this.#counters.dropped.lateReply += 1;
        }
        return;
    }
  }

  #deliverMessage(peer: string, message: unknown, lane: Lane): void {
    const handler = this.#messageHandler;
    if (handler === null) {
      this.#counters.dropped.noHandler += 1;
      return;
    }
    try {
      handler(peer, message, lane);
    } catch (error) {
      this.#counters.handlerErrors += 1;
      this.#handlerErrors.error({ peer, err: error }, 'message handler failed');
    }
  }
}

function formatAddress(address: SocketAddress): string {
  return address.host.includes(':')
    ? `[${address.host}]:${address.port}`
    : `${address.host}:${address.port}`;
}
