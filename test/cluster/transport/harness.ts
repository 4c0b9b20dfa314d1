/**
 * Test helpers for the transport: transports on free ports of 127.0.0.1, a polling wait with a
 * generous deadline and a message recorder. A raw peer completes the real handshake on a plain
 * socket, then lets the test write any bytes or stop reading.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { packMessage } from '../../../src/cluster/transport/codec.js';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  type FrameDecoder,
  FrameType,
} from '../../../src/cluster/transport/frame.js';
import {
  type HandshakeOutcome,
  startAcceptorHandshake,
  startDialerHandshake,
} from '../../../src/cluster/transport/handshake-session.js';
import {
  type Lane,
  Transport,
  type TransportLimits,
  type TransportTiming,
} from '../../../src/cluster/transport/index.js';
import { silentLogger } from '../../../src/util/log.js';
import { freePorts } from '../../support/ports.js';

export const testSecret = Buffer.from('transport-test-secret-0123456789', 'utf8');

/**
 * Short reconnect delays, so restarts finish quickly in tests. The handshake and liveness
 * timeouts stay generous, so that a loaded machine does not drop connections mid-test.
 */
export const fastTiming: Partial<TransportTiming> = {
  handshakeTimeoutMs: 5000,
  pingIntervalMs: 100,
  livenessTimeoutMs: 5000,
  reconnectInitialDelayMs: 20,
  reconnectMaxDelayMs: 200,
};

export interface ClusterOptions {
  limits?: Partial<TransportLimits>;
  timing?: Partial<TransportTiming>;
  /** Extra peers (e.g. a raw peer) added to every transport's list, id to host:port. */
  extraPeers?: Record<string, string>;
  secretFor?: (nodeId: string) => Uint8Array;
}

export interface TestCluster {
  transports: Map<string, Transport>;
  addresses: Record<string, string>;
  get(nodeId: string): Transport;
}

/** Attempts at binding free ports, which another process may take between pick and bind. */
const MAX_START_ATTEMPTS = 3;

/** Creates and starts one transport per id, each knowing all others; stops them after `t`. */
export async function startCluster(
  t: TestContext,
  nodeIds: string[],
  options: ClusterOptions = {},
): Promise<TestCluster> {
  for (let attempt = 1; ; attempt++) {
    const ports = await freePorts(nodeIds.length);
    const addresses: Record<string, string> = { ...options.extraPeers };
    nodeIds.forEach((nodeId, index) => {
      addresses[nodeId] = `127.0.0.1:${ports[index]}`;
    });
    const transports = new Map<string, Transport>();
    for (const nodeId of nodeIds) {
      transports.set(nodeId, createTransport(nodeId, addresses, options));
    }
    const stopAll = () =>
      Promise.all([...transports.values()].map((transport) => transport.stop()));
    try {
      await Promise.all([...transports.values()].map((transport) => transport.start()));
    } catch (error) {
      await stopAll();
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' && attempt < MAX_START_ATTEMPTS) continue;
      throw error;
    }
    t.after(stopAll);
    return {
      transports,
      addresses,
      get: (nodeId) => {
        const transport = transports.get(nodeId);
        if (transport === undefined) throw new Error(`no transport ${nodeId}`);
        return transport;
      },
    };
  }
}

export function createTransport(
  nodeId: string,
  addresses: Record<string, string>,
  options: ClusterOptions = {},
): Transport {
  return new Transport({
    nodeId,
    listen: addresses[nodeId]!,
    peers: addresses,
    secret: options.secretFor?.(nodeId) ?? testSecret,
    limits: options.limits,
    timing: { ...fastTiming, ...options.timing },
    logger: silentLogger,
  });
}

/** Polls `condition` every 10 ms until it holds; fails after `deadlineMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  deadlineMs = 20_000,
): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > deadlineMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until every pair of `transports` is connected. */
export async function waitForMesh(cluster: TestCluster): Promise<void> {
  const ids = [...cluster.transports.keys()];
  await waitFor(
    () =>
      ids.every((id) => ids.every((other) => other === id || cluster.get(id).isConnected(other))),
    'a full mesh',
  );
}

export interface Received {
  from: string;
  message: unknown;
  lane: Lane;
}

/** Records every message `transport` receives. */
export function recordMessages(transport: Transport): Received[] {
  const received: Received[] = [];
  transport.onMessage((from, message, lane) => received.push({ from, message, lane }));
  return received;
}

export interface RawPeer {
  socket: Socket;
  /** Frames decoded after the handshake, in arrival order. */
  frames: Array<{ type: number; payload: Buffer }>;
  closed: boolean;
}

/** Runs the dialer's handshake as `localId` against `targetId` on a plain socket. */
export async function tryDialRaw(
  localId: string,
  targetId: string,
  targetAddress: string,
  secret: Uint8Array = testSecret,
): Promise<HandshakeOutcome> {
  const socket = connectRaw(targetAddress);
  return new Promise<HandshakeOutcome>((resolve) => {
    startDialerHandshake({
      socket,
      localId,
      secret,
      timeoutMs: 5000,
      expectedPeerId: targetId,
      onDone: resolve,
    });
  });
}

/** Like tryDialRaw, but the handshake must succeed; returns the open raw peer. */
export async function dialRaw(
  localId: string,
  targetId: string,
  targetAddress: string,
): Promise<RawPeer> {
  const outcome = await tryDialRaw(localId, targetId, targetAddress);
  if (!outcome.ok) throw new Error(`raw handshake failed: ${outcome.failure} ${outcome.detail}`);
  return adoptRaw(outcome.socket, outcome.decoder);
}

/**
 * Opens a plain TCP socket to `host:port` that discards what it receives (a socket that
 * is never read would never see the remote close it).
 */
export function connectRaw(address: string): Socket {
  const [host, port] = address.split(':');
  const socket = connect({ host: host!, port: Number(port) });
  socket.on('error', () => {});
  socket.resume();
  return socket;
}

/** Resolves when `socket` has closed. */
export function closedSocket(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.once('close', () => resolve()));
}

/**
 * Listens as `localId` for one dialer and completes the acceptor's handshake. With
 * `read: false` the socket stops reading right after, like a peer that hangs.
 */
export async function listenRaw(
  t: TestContext,
  localId: string,
  port: number,
  read: boolean,
): Promise<{ accepted: Promise<RawPeer> }> {
  const server: Server = createServer();
  const sockets: Socket[] = [];
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const accepted = new Promise<RawPeer>((resolve, reject) => {
    server.once('connection', (socket) => {
      sockets.push(socket);
      startAcceptorHandshake({
        socket,
        localId,
        secret: testSecret,
        timeoutMs: 5000,
        admit: () => null,
        onDone: (outcome) => {
          if (!outcome.ok) {
            reject(new Error(`raw handshake failed: ${outcome.failure}`));
            return;
          }
          const peer = adoptRaw(outcome.socket, outcome.decoder);
          if (!read) peer.socket.pause();
          resolve(peer);
        },
      });
    });
  });
  return { accepted };
}

function adoptRaw(socket: Socket, decoder: FrameDecoder): RawPeer {
  const peer: RawPeer = { socket, frames: [], closed: false };
  socket.on('error', () => {});
  socket.on('close', () => {
    peer.closed = true;
  });
  decoder.maxPayloadBytes = 2 * 1024 * 1024;
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch {
      socket.destroy();
    }
  });
  decoder.resume((type, payload) => {
    peer.frames.push({ type, payload: Buffer.from(payload) });
  });
  socket.resume();
  return peer;
}

/** Returns the control frame a peer sends for `message`. */
export function controlFrameOf(message: unknown): Buffer {
  return encodeFrame(FrameType.control, packMessage(message).subarray(FRAME_HEADER_BYTES));
}
