/**
 * Handshake payloads and proofs, without I/O. The dialer and the acceptor each send a fresh
 * random nonce and prove that they hold the cluster secret with an HMAC-SHA256 over both
 * nonces, both node ids and their role, so:
 * - the secret never crosses the wire;
 * - a proof is bound to one connection (both nonces) and cannot be replayed on another;
 * - the acceptor's proof cannot be reflected back as a dialer's proof (the role is hashed in);
 * - a peer's identity is the id its proof covers, whatever address the connection came from.
 *
 * NOTE: nothing binds the frames after the handshake to it. A man in the middle can relay a
 * handshake unchanged and then inject frames, so the peer port needs a trusted network.
 *
 * Payload layouts (docs/transport.md has the full exchange):
 *   hello:     u8 version | dialer nonce (32) | u8 id length | dialer id (UTF-8)
 *   challenge: u8 version | acceptor nonce (32) | acceptor proof (32) | u8 id length | acceptor id
 *   proof:     dialer proof (32)
 *   welcome:   empty
 * The decoders return null for a payload of the wrong shape instead of throwing.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;
export const MAX_NODE_ID_BYTES = 255;

export type HandshakeRole = 'dialer' | 'acceptor';

const ROLE_LABELS: Readonly<Record<HandshakeRole, Buffer>> = {
  dialer: Buffer.from('divan-transport/1 dialer\0', 'utf8'),
  acceptor: Buffer.from('divan-transport/1 acceptor\0', 'utf8'),
};

export interface Hello {
  version: number;
  nonce: Buffer;
  nodeId: string;
}

export interface Challenge {
  version: number;
  nonce: Buffer;
  proof: Buffer;
  nodeId: string;
}

/** The nonces and ids one connection's proofs cover. */
export interface ProofInput {
  dialerId: string;
  acceptorId: string;
  dialerNonce: Uint8Array;
  acceptorNonce: Uint8Array;
}

export function createNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

export function encodeHello(hello: Hello): Buffer {
  const id = Buffer.from(hello.nodeId, 'utf8');
  return Buffer.concat([Buffer.of(hello.version), hello.nonce, Buffer.of(id.length), id]);
}

export function decodeHello(payload: Buffer): Hello | null {
  const idOffset = 1 + NONCE_BYTES + 1;
  if (payload.length < idOffset) return null;
  const nodeId = decodeNodeId(payload, idOffset - 1);
  if (nodeId === null) return null;
  return {
    version: payload[0]!,
    nonce: Buffer.from(payload.subarray(1, 1 + NONCE_BYTES)),
    nodeId,
  };
}

export function encodeChallenge(challenge: Challenge): Buffer {
  const id = Buffer.from(challenge.nodeId, 'utf8');
  return Buffer.concat([
    Buffer.of(challenge.version),
    challenge.nonce,
    challenge.proof,
    Buffer.of(id.length),
    id,
  ]);
}

export function decodeChallenge(payload: Buffer): Challenge | null {
  const idOffset = 1 + NONCE_BYTES + PROOF_BYTES + 1;
  if (payload.length < idOffset) return null;
  const nodeId = decodeNodeId(payload, idOffset - 1);
  if (nodeId === null) return null;
  return {
    version: payload[0]!,
    nonce: Buffer.from(payload.subarray(1, 1 + NONCE_BYTES)),
    proof: Buffer.from(payload.subarray(1 + NONCE_BYTES, 1 + NONCE_BYTES + PROOF_BYTES)),
    nodeId,
  };
}

/** Reads `u8 length | UTF-8 id` at `offset`, which must end the payload exactly. */
function decodeNodeId(payload: Buffer, offset: number): string | null {
  const length = payload[offset]!;
  const start = offset + 1;
  if (length === 0 || payload.length !== start + length) return null;
  const bytes = payload.subarray(start);
  const nodeId = bytes.toString('utf8');
  // A lossy decoding (invalid UTF-8) would let two byte strings claim one id.
  return Buffer.from(nodeId, 'utf8').equals(bytes) ? nodeId : null;
}

/**
 * Computes the proof that `role` has `secret`: HMAC-SHA256 keyed by the secret over
 * role label | u8 len | dialer id | u8 len | acceptor id | dialer nonce | acceptor nonce.
 */
export function computeProof(secret: Uint8Array, role: HandshakeRole, input: ProofInput): Buffer {
  const dialerId = Buffer.from(input.dialerId, 'utf8');
  const acceptorId = Buffer.from(input.acceptorId, 'utf8');
  return createHmac('sha256', secret)
    .update(ROLE_LABELS[role])
    .update(Buffer.of(dialerId.length))
    .update(dialerId)
    .update(Buffer.of(acceptorId.length))
    .update(acceptorId)
    .update(input.dialerNonce)
    .update(input.acceptorNonce)
    .digest();
}

/** Checks a received proof in constant time. */
export function verifyProof(
  secret: Uint8Array,
  role: HandshakeRole,
  input: ProofInput,
  received: Uint8Array,
): boolean {
  if (received.length !== PROOF_BYTES) return false;
  return timingSafeEqual(computeProof(secret, role, input), received);
}
