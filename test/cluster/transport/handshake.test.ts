/** Handshake payloads and proofs, and the reconnect backoff, without sockets. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { reconnectDelayMs } from '../../../src/cluster/transport/backoff.js';
import {
  computeProof,
  decodeChallenge,
  decodeHello,
  encodeChallenge,
  encodeHello,
  NONCE_BYTES,
  PROOF_BYTES,
  type ProofInput,
  verifyProof,
} from '../../../src/cluster/transport/handshake.js';
import { LogLimiter } from '../../../src/cluster/transport/log-limiter.js';

const nodeIdArbitrary = fc
  .string({ minLength: 1, maxLength: 40, unit: 'grapheme' })
  .filter((id) => Buffer.byteLength(id) <= 255);
const nonceArbitrary = fc.uint8Array({ minLength: NONCE_BYTES, maxLength: NONCE_BYTES });
const secretArbitrary = fc.uint8Array({ minLength: 16, maxLength: 64 });
const proofInputArbitrary: fc.Arbitrary<ProofInput> = fc.record({
  dialerId: nodeIdArbitrary,
  acceptorId: nodeIdArbitrary,
  dialerNonce: nonceArbitrary,
  acceptorNonce: nonceArbitrary,
});

test('a proof verifies only with its secret, role and inputs', () => {
  fc.assert(
    fc.property(
      secretArbitrary,
      secretArbitrary,
      proofInputArbitrary,
      nonceArbitrary,
      (secret, otherSecret, input, otherNonce) => {
        const proof = computeProof(secret, 'dialer', input);
        assert.equal(proof.length, PROOF_BYTES);
        assert.equal(verifyProof(secret, 'dialer', input, proof), true);
        assert.equal(verifyProof(secret, 'acceptor', input, proof), false, 'reflected proof');
        if (!Buffer.from(otherSecret).equals(Buffer.from(secret))) {
          assert.equal(verifyProof(otherSecret, 'dialer', input, proof), false, 'other secret');
        }
        if (!Buffer.from(otherNonce).equals(Buffer.from(input.acceptorNonce))) {
          const replayed = { ...input, acceptorNonce: otherNonce };
          assert.equal(verifyProof(secret, 'dialer', replayed, proof), false, 'replayed proof');
        }
        if (input.dialerId !== input.acceptorId) {
          const swapped = { ...input, dialerId: input.acceptorId, acceptorId: input.dialerId };
          assert.equal(verifyProof(secret, 'dialer', swapped, proof), false, 'swapped ids');
        }
        assert.equal(verifyProof(secret, 'dialer', input, proof.subarray(1)), false, 'short proof');
      },
    ),
    { numRuns: 200 },
  );
});

test('ids cannot be shifted between the two id fields', () => {
  const secret = Buffer.alloc(16, 7);
  const nonce = Buffer.alloc(NONCE_BYTES);
  const proof = computeProof(secret, 'dialer', {
    dialerId: 'ab',
    acceptorId: 'c',
    dialerNonce: nonce,
    acceptorNonce: nonce,
  });
  const shifted = { dialerId: 'a', acceptorId: 'bc', dialerNonce: nonce, acceptorNonce: nonce };
  assert.equal(verifyProof(secret, 'dialer', shifted, proof), false);
});

test('hello and challenge round-trip', () => {
  fc.assert(
    fc.property(
      nodeIdArbitrary,
      nonceArbitrary,
      fc.uint8Array({ minLength: PROOF_BYTES, maxLength: PROOF_BYTES }),
      (nodeId, nonce, proof) => {
        const hello = { version: 1, nonce: Buffer.from(nonce), nodeId };
        assert.deepEqual(decodeHello(encodeHello(hello)), hello);
        const challenge = {
          version: 1,
          nonce: Buffer.from(nonce),
          proof: Buffer.from(proof),
          nodeId,
        };
        assert.deepEqual(decodeChallenge(encodeChallenge(challenge)), challenge);
      },
    ),
  );
});

test('malformed hello and challenge decode to null', () => {
  const hello = encodeHello({ version: 1, nonce: Buffer.alloc(NONCE_BYTES), nodeId: 'n1' });
  assert.equal(decodeHello(hello.subarray(0, hello.length - 1)), null, 'truncated id');
  assert.equal(decodeHello(Buffer.concat([hello, Buffer.of(0)])), null, 'trailing byte');
  assert.equal(decodeHello(Buffer.alloc(3)), null, 'too short');
  const emptyId = Buffer.concat([Buffer.of(1), Buffer.alloc(NONCE_BYTES), Buffer.of(0)]);
  assert.equal(decodeHello(emptyId), null, 'empty id');
  const invalidUtf8 = Buffer.concat([Buffer.of(1), Buffer.alloc(NONCE_BYTES), Buffer.of(1, 0xff)]);
  assert.equal(decodeHello(invalidUtf8), null, 'invalid UTF-8');
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      const decoded = decodeChallenge(Buffer.from(bytes));
      if (decoded !== null) assert.equal(encodeChallenge(decoded).equals(Buffer.from(bytes)), true);
    }),
  );
});

test('reconnect delays grow, stay capped and jittered', () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 100 }),
      fc.double({ min: 0, max: 0.999999, noNaN: true }),
      (attempt, random) => {
        const delay = reconnectDelayMs(attempt, 50, 2000, () => random);
        const step = Math.min(50 * 2 ** attempt, 2000);
        assert.ok(delay >= step / 2 && delay < step, `delay ${delay} for step ${step}`);
      },
    ),
  );
});

test('log limiter caps warnings per window', () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  let now = 0;
  const limiter = new LogLimiter(logger, 3, 1000, () => now);
  for (let index = 0; index < 10; index++) limiter.warn({ index }, 'rejected');
  assert.deepEqual(
    lines.map((line) => line.index),
    [0, 1, 2],
  );
  now = 1000;
  limiter.warn({ index: 10 }, 'rejected');
  assert.equal(lines.length, 5);
  assert.equal(lines[3]!.suppressed, 7);
  assert.equal(lines[4]!.index, 10);
});
