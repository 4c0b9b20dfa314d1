/**
 * The `AuthSession` cookie of cookie sessions: who logged in and when, signed with the
 * cluster's cookie secret, so any node of the cluster verifies a cookie another node issued.
 *
 * Value: `base64url(name) "." issuedAtHex "." base64url(mac)`, where `issuedAtHex` is the
 * login time in whole seconds since the Unix epoch and `mac` is
 * HMAC-SHA256(secret, `name:issuedAtHex:salt`). `salt` is the user's password salt, so
 * changing a password (which picks a new salt) invalidates the user's cookies. A cookie is
 * valid while `issuedAt + timeout > now`.
 *
 * NB: the layout is Divan's own. CouchDB also signs `name:time` with an HMAC keyed by the
 * secret and the user's salt, but clients treat the value as opaque.
 *
 * Pure functions: the secret, the clock and the salt lookup are the caller's.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { assert } from '../util/assert.js';

/** The cookie's name, as CouchDB calls it. */
export const SESSION_COOKIE = 'AuthSession';
/** The shortest cookie secret accepted. */
export const MIN_COOKIE_SECRET_BYTES = 16;
const MAC_BYTES = 32;
/** Longest cookie value parsed; longer ones are rejected before any work. */
const MAX_COOKIE_CHARACTERS = 1024;
const HEX_TIME = /^[0-9a-f]{1,12}$/;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

/** A parsed cookie whose signature is not checked yet. */
export interface SessionClaim {
  readonly name: string;
  /** Login time, seconds since the Unix epoch. */
  readonly issuedAtS: number;
  readonly mac: Buffer;
}

function macOf(secret: Uint8Array, name: string, issuedAtS: number, salt: string): Buffer {
  return createHmac('sha256', secret)
    .update(`${name}:${issuedAtS.toString(16)}:${salt}`)
    .digest();
}

/** Builds a cookie value for `name` logged in at `issuedAtS`. */
export function signSession(
  secret: Uint8Array,
  name: string,
  issuedAtS: number,
  salt: string,
): string {
  assert(secret.byteLength >= MIN_COOKIE_SECRET_BYTES, 'the cookie secret is too short');
  assert(Number.isSafeInteger(issuedAtS) && issuedAtS >= 0, 'issuedAtS must be whole seconds');
  const encodedName = Buffer.from(name, 'utf8').toString('base64url');
  const mac = macOf(secret, name, issuedAtS, salt).toString('base64url');
  return `${encodedName}.${issuedAtS.toString(16)}.${mac}`;
}

/** Splits a cookie value; null when it does not have the layout. */
export function parseSession(value: string): SessionClaim | null {
  if (value.length > MAX_COOKIE_CHARACTERS) return null;
  const parts = value.split('.');
  if (parts.length !== 3) return null;
  const [encodedName, issuedHex, encodedMac] = parts as [string, string, string];
  if (!BASE64URL.test(encodedName) || !BASE64URL.test(encodedMac)) return null;
  if (!HEX_TIME.test(issuedHex)) return null;
  const name = Buffer.from(encodedName, 'base64url').toString('utf8');
  const mac = Buffer.from(encodedMac, 'base64url');
  if (name.length === 0 || mac.length !== MAC_BYTES) return null;
  return { name, issuedAtS: Number.parseInt(issuedHex, 16), mac };
}

/** Whether the claim is signed with `secret` for `salt` and is unexpired at `nowS`. */
export function verifySession(
  secret: Uint8Array,
  claim: SessionClaim,
  salt: string,
  nowS: number,
  timeoutS: number,
): boolean {
  if (claim.issuedAtS + timeoutS <= nowS) return false;
  const expected = macOf(secret, claim.name, claim.issuedAtS, salt);
  return timingSafeEqual(expected, claim.mac);
}

/** Reads one cookie from a `Cookie` header; undefined when absent. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const equals = part.indexOf('=');
    if (equals < 0) continue;
    if (part.slice(0, equals).trim() === name) return part.slice(equals + 1).trim();
  }
  return undefined;
}

/** Derives the cookie secret from the cluster secret, when no separate one is configured. */
export function deriveCookieSecret(clusterSecret: Uint8Array): Buffer {
  return createHmac('sha256', clusterSecret).update('divan AuthSession cookie secret').digest();
}
