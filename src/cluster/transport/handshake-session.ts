/**
 * One handshake on one socket, from either side, with its timeout. It owns the socket until it
 * calls `onDone` exactly once:
 * - on success, with the socket paused and the frame decoder paused, holding any bytes the
 *   peer sent after the handshake, so the connection that takes over loses nothing;
 * - on failure, with the socket destroyed. Nothing but handshake frames was parsed, so nothing
 *   an unauthenticated peer sent reaches the layers above.
 *
 * The exchange: the dialer sends hello; the acceptor checks the dialer's id (known peer, dial
 * direction) and sends challenge with its proof; the dialer checks the acceptor's id and proof
 * and sends proof; the acceptor checks it and sends welcome. The dialer sends nothing else
 * before welcome.
 */
import type { Socket } from 'node:net';
import {
  encodeFrame,
  FrameDecoder,
  FrameType,
  MAX_HANDSHAKE_PAYLOAD_BYTES,
  ProtocolError,
} from './frame.js';
import {
  computeProof,
  createNonce,
  decodeChallenge,
  decodeHello,
  encodeChallenge,
  encodeHello,
  PROTOCOL_VERSION,
  type ProofInput,
  verifyProof,
} from './handshake.js';

export type HandshakeFailure =
  | 'timeout'
  | 'closed'
  | 'malformed'
  | 'version-mismatch'
  | 'bad-proof'
  | 'unknown-peer'
  | 'wrong-direction'
  | 'unexpected-peer'
  | 'cancelled'
  | 'too-many-pending'
  /** The TLS handshake failed (no certificate, or one the CA did not sign). */
  | 'tls';

export type HandshakeOutcome =
  | { ok: true; peerId: string; socket: Socket; decoder: FrameDecoder }
  | { ok: false; failure: HandshakeFailure; detail: string };

interface SessionParams {
  socket: Socket;
  localId: string;
  secret: Uint8Array;
  timeoutMs: number;
  onDone: (outcome: HandshakeOutcome) => void;
}

export interface DialerParams extends SessionParams {
  /** The peer this node meant to reach; the acceptor must prove this id. */
  expectedPeerId: string;
}

export interface AcceptorParams extends SessionParams {
  /** Returns why a dialer with this id is rejected, or null to go on. */
  admit: (peerId: string) => HandshakeFailure | null;
}

/** Rejects the handshake with a reason for the log. */
class HandshakeRejection extends Error {
  constructor(
    readonly failure: HandshakeFailure,
    detail: string,
  ) {
    super(detail);
  }
}

/** The parts shared by both sides: socket listeners, timeout, completion. */
abstract class HandshakeSession {
  protected readonly socket: Socket;
  protected readonly decoder: FrameDecoder;
  #done = false;
  readonly #timer: NodeJS.Timeout;
  readonly #onDone: (outcome: HandshakeOutcome) => void;
  readonly #onData = (chunk: Buffer): void => this.#receive(chunk);
  readonly #onClose = (): void => this.fail('closed', 'connection closed during the handshake');
  readonly #onError = (error: Error): void => this.fail('closed', error.message);

  constructor(params: SessionParams) {
    this.socket = params.socket;
    this.#onDone = params.onDone;
    this.decoder = new FrameDecoder(MAX_HANDSHAKE_PAYLOAD_BYTES, (type, payload) =>
      this.onFrame(type, payload),
    );
    this.#timer = setTimeout(
      () => this.fail('timeout', `no handshake within ${params.timeoutMs} ms`),
      params.timeoutMs,
    );
    this.socket.on('data', this.#onData);
    this.socket.on('close', this.#onClose);
    this.socket.on('error', this.#onError);
  }

  get done(): boolean {
    return this.#done;
  }

  /** Ends the handshake as failed, for a transport that is stopping. */
  cancel(): void {
    this.fail('cancelled', 'transport stopped');
  }

  protected abstract onFrame(type: number, payload: Buffer): void;

  protected send(type: FrameType, payload: Uint8Array): void {
    this.socket.write(encodeFrame(type, payload));
  }

  protected succeed(peerId: string): void {
    if (this.#done) return;
    this.#finish();
    this.socket.pause();
    this.decoder.pause();
    this.#onDone({ ok: true, peerId, socket: this.socket, decoder: this.decoder });
  }

  protected fail(failure: HandshakeFailure, detail: string): void {
    if (this.#done) return;
    this.#finish();
    this.decoder.stop();
    // A late socket error must not become an uncaught exception.
    this.socket.on('error', ignoreError);
    this.socket.destroy();
    this.#onDone({ ok: false, failure, detail });
  }

  #finish(): void {
    this.#done = true;
    clearTimeout(this.#timer);
    this.socket.off('data', this.#onData);
    this.socket.off('close', this.#onClose);
    this.socket.off('error', this.#onError);
  }

  #receive(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
    } catch (error) {
      if (error instanceof HandshakeRejection) {
        this.fail(error.failure, error.message);
      } else if (error instanceof ProtocolError) {
        this.fail('malformed', error.message);
      } else {
        throw error;
      }
    }
  }
}

function ignoreError(): void {}

function expectFrame(actual: number, expected: FrameType): void {
  if (actual !== expected) {
    throw new HandshakeRejection('malformed', `expected frame type ${expected}, got ${actual}`);
  }
}

function checkVersion(version: number): void {
  if (version !== PROTOCOL_VERSION) {
    throw new HandshakeRejection(
      'version-mismatch',
      `peer speaks protocol version ${version}, this node ${PROTOCOL_VERSION}`,
    );
  }
}

class DialerSession extends HandshakeSession {
  readonly #params: DialerParams;
  readonly #nonce = createNonce();
  #proofInput: ProofInput | null = null;

  constructor(params: DialerParams) {
    super(params);
    this.#params = params;
    this.send(
      FrameType.hello,
      encodeHello({ version: PROTOCOL_VERSION, nonce: this.#nonce, nodeId: params.localId }),
    );
  }

  protected onFrame(type: number, payload: Buffer): void {
    if (this.#proofInput === null) {
      this.#onChallenge(type, payload);
    } else {
      expectFrame(type, FrameType.welcome);
      if (payload.length !== 0) throw new HandshakeRejection('malformed', 'welcome not empty');
      this.succeed(this.#params.expectedPeerId);
    }
  }

  #onChallenge(type: number, payload: Buffer): void {
    expectFrame(type, FrameType.challenge);
    const challenge = decodeChallenge(payload);
    if (challenge === null) throw new HandshakeRejection('malformed', 'invalid challenge');
    checkVersion(challenge.version);
    if (challenge.nodeId !== this.#params.expectedPeerId) {
      throw new HandshakeRejection(
        'unexpected-peer',
        `dialed ${this.#params.expectedPeerId}, reached ${challenge.nodeId}`,
      );
    }
    const input: ProofInput = {
      dialerId: this.#params.localId,
      acceptorId: challenge.nodeId,
      dialerNonce: this.#nonce,
      acceptorNonce: challenge.nonce,
    };
    if (!verifyProof(this.#params.secret, 'acceptor', input, challenge.proof)) {
      throw new HandshakeRejection('bad-proof', `invalid proof from ${challenge.nodeId}`);
    }
    this.#proofInput = input;
    this.send(FrameType.proof, computeProof(this.#params.secret, 'dialer', input));
  }
}

class AcceptorSession extends HandshakeSession {
  readonly #params: AcceptorParams;
  #proofInput: ProofInput | null = null;

  constructor(params: AcceptorParams) {
    super(params);
    this.#params = params;
  }

  protected onFrame(type: number, payload: Buffer): void {
    if (this.#proofInput === null) {
      this.#onHello(type, payload);
    } else {
      this.#onProof(type, payload, this.#proofInput);
    }
  }

  #onHello(type: number, payload: Buffer): void {
    expectFrame(type, FrameType.hello);
    const hello = decodeHello(payload);
    if (hello === null) throw new HandshakeRejection('malformed', 'invalid hello');
    checkVersion(hello.version);
    const rejection = this.#params.admit(hello.nodeId);
    if (rejection !== null) {
      throw new HandshakeRejection(rejection, `dialer claims id ${hello.nodeId}`);
    }
    const input: ProofInput = {
      dialerId: hello.nodeId,
      acceptorId: this.#params.localId,
      dialerNonce: hello.nonce,
      acceptorNonce: createNonce(),
    };
    this.#proofInput = input;
    const proof = computeProof(this.#params.secret, 'acceptor', input);
    this.send(
      FrameType.challenge,
      encodeChallenge({
        version: PROTOCOL_VERSION,
        nonce: Buffer.from(input.acceptorNonce),
        proof,
        nodeId: this.#params.localId,
      }),
    );
  }

  #onProof(type: number, payload: Buffer, input: ProofInput): void {
    expectFrame(type, FrameType.proof);
    if (!verifyProof(this.#params.secret, 'dialer', input, payload)) {
      throw new HandshakeRejection(
        'bad-proof',
        `invalid proof from a dialer claiming ${input.dialerId}`,
      );
    }
    this.send(FrameType.welcome, new Uint8Array(0));
    this.succeed(input.dialerId);
  }
}

export interface HandshakeHandle {
  readonly done: boolean;
  cancel(): void;
}

/** Starts the dialer's side on a socket that is connecting or connected. */
export function startDialerHandshake(params: DialerParams): HandshakeHandle {
  return new DialerSession(params);
}

/** Starts the acceptor's side on a freshly accepted socket. */
export function startAcceptorHandshake(params: AcceptorParams): HandshakeHandle {
  return new AcceptorSession(params);
}
