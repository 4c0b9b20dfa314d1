/**
 * Server admin authentication by HTTP Basic, as CouchDB 3.x checks `[admins]`.
 *
 * Stored passwords use CouchDB's PBKDF2 form: `-pbkdf2:<prf>-<derived key hex>,<salt>,<iterations>`,
 * where the salt is used as text (CouchDB's salts are 32 hex characters) and the key length
 * is the PRF's digest length. `-pbkdf2-...` (no PRF) means SHA-1, CouchDB's older default.
 * `hashPassword` writes the SHA-256 form with a fresh random salt per user.
 *
 * Checking a password costs a PBKDF2 run (tens of milliseconds at CouchDB's 50,000
 * iterations), so verified credentials are cached: the key is an HMAC-SHA256, under a secret
 * made at startup, of the `Authorization` header's credentials, so the cache holds no
 * password. The cache is bounded (least recently used goes first) and entries expire. Only
 * successes are cached, so a wrong password always pays for PBKDF2. Derived keys are compared
 * in constant time.
 *
 * What this does not do: `_users` documents, cookie sessions, proxy or JWT authentication.
 */
import { createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { assert } from '../util/assert.js';

const pbkdf2Async = promisify(pbkdf2);

/** CouchDB 3.x's default iteration count for new admin passwords. */
export const DEFAULT_PBKDF2_ITERATIONS = 50_000;
const SALT_BYTES = 16;
const DEFAULT_CACHE_ENTRIES = 1_000;
const DEFAULT_CACHE_TTL_MS = 10 * 60 * 1000;
const CACHE_KEY_SECRET_BYTES = 32;
/** Iterations above this are rejected when parsing, so a stored hash cannot stall requests. */
const MAX_PBKDF2_ITERATIONS = 10_000_000;

/** The PRFs CouchDB accepts in `-pbkdf2:<prf>-`, with Node's digest names and key lengths. */
const PRF_KEY_BYTES: Readonly<Record<string, number>> = {
  sha: 20,
  sha224: 28,
  sha256: 32,
  sha384: 48,
  sha512: 64,
};
const NODE_DIGEST: Readonly<Record<string, string>> = {
  sha: 'sha1',
  sha224: 'sha224',
  sha256: 'sha256',
  sha384: 'sha384',
  sha512: 'sha512',
};

const HASH_FORM = /^-pbkdf2(?::(sha|sha224|sha256|sha384|sha512))?-([0-9a-f]+),([^,]+),([0-9]+)$/;

/** A parsed stored password. */
export interface PasswordHash {
  /** CouchDB's PRF name: `sha`, `sha224`, `sha256`, `sha384` or `sha512`. */
  readonly prf: string;
  readonly derivedKey: Buffer;
  readonly salt: string;
  readonly iterations: number;
}

/** A server admin: a name and a stored password in CouchDB's PBKDF2 form. */
export interface AdminCredential {
  readonly name: string;
  readonly passwordHash: string;
}

/** Parses a stored password, or returns null when it is not CouchDB's PBKDF2 form. */
export function parsePasswordHash(stored: string): PasswordHash | null {
  const match = HASH_FORM.exec(stored);
  if (match === null) return null;
  const prf = match[1] ?? 'sha';
  const keyHex = match[2]!;
  const iterations = Number(match[4]);
  if (keyHex.length !== PRF_KEY_BYTES[prf]! * 2) return null;
  if (iterations < 1 || iterations > MAX_PBKDF2_ITERATIONS) return null;
  return { prf, derivedKey: Buffer.from(keyHex, 'hex'), salt: match[3]!, iterations };
}

function derive(password: string, hash: Omit<PasswordHash, 'derivedKey'>): Promise<Buffer> {
  return pbkdf2Async(
    password,
    hash.salt,
    hash.iterations,
    PRF_KEY_BYTES[hash.prf]!,
    NODE_DIGEST[hash.prf]!,
  );
}

/** Hashes a password into CouchDB's `-pbkdf2:sha256-` form with a fresh random salt. */
export async function hashPassword(
  password: string,
  iterations = DEFAULT_PBKDF2_ITERATIONS,
): Promise<string> {
  assert(Number.isSafeInteger(iterations) && iterations >= 1, 'iterations must be positive');
  const salt = randomBytes(SALT_BYTES).toString('hex');
  const derivedKey = await derive(password, { prf: 'sha256', salt, iterations });
  return `-pbkdf2:sha256-${derivedKey.toString('hex')},${salt},${iterations}`;
}

/** Checks a password against a stored hash in constant time (for a given key length). */
export async function verifyPassword(password: string, hash: PasswordHash): Promise<boolean> {
  const derived = await derive(password, hash);
  return derived.length === hash.derivedKey.length && timingSafeEqual(derived, hash.derivedKey);
}

/** Outcome of reading a request's credentials. */
export type AuthOutcome =
  /** No usable `Authorization: Basic` header. */
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'admin'; readonly name: string }
  /** Basic credentials that name no admin or carry a wrong password. */
  | { readonly kind: 'rejected'; readonly name: string };

/** Checked for names that are not admins; `authenticate` rejects it even if a key matched. */
const UNKNOWN_ADMIN_HASH: PasswordHash = Object.freeze({
  prf: 'sha256',
  derivedKey: Buffer.alloc(PRF_KEY_BYTES.sha256!),
  salt: '00000000000000000000000000000000',
  iterations: DEFAULT_PBKDF2_ITERATIONS,
});

const ANONYMOUS: AuthOutcome = Object.freeze({ kind: 'anonymous' });

export interface AuthenticatorOptions {
  /** Maximum cached verified credentials. */
  readonly cacheEntries?: number;
  /** How long a verified credential stays cached, in milliseconds. */
  readonly cacheTtlMs?: number;
  /** Clock for cache expiry, in milliseconds; `Date.now` when absent. */
  readonly now?: () => number;
}

interface CacheEntry {
  readonly name: string;
  readonly expiresAt: number;
}

/** Splits `Basic base64(name:password)`; null when the header is not that. */
export function parseBasicCredentials(
  header: string | undefined,
): { name: string; password: string } | null {
  if (header === undefined) return null;
  const space = header.indexOf(' ');
  if (space < 0 || header.slice(0, space).toLowerCase() !== 'basic') return null;
  const encoded = header.slice(space + 1).trim();
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(encoded)) return null;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { name: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Verifies `Authorization` headers against the server admins, with a cache of successes. */
export class AdminAuthenticator {
  private readonly admins = new Map<string, PasswordHash>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly cacheKeySecret = randomBytes(CACHE_KEY_SECRET_BYTES);
  private readonly cacheEntries: number;
  private readonly cacheTtlMs: number;
  private readonly now: () => number;
  /** PBKDF2 runs so far, for tests and metrics. */
  passwordChecks = 0;

  constructor(admins: readonly AdminCredential[], options: AuthenticatorOptions = {}) {
    for (const admin of admins) {
      const hash = parsePasswordHash(admin.passwordHash);
      assert(hash !== null, () => `admin ${admin.name} has no valid PBKDF2 password hash`);
      this.admins.set(admin.name, hash);
    }
    this.cacheEntries = options.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
    this.now = options.now ?? Date.now;
    assert(this.cacheEntries >= 1, 'the credential cache needs room for one entry');
  }

  /** Reads the credentials of an `Authorization` header. */
  async authenticate(header: string | undefined): Promise<AuthOutcome> {
    const credentials = parseBasicCredentials(header);
    if (credentials === null) return ANONYMOUS;

    const key = createHmac('sha256', this.cacheKeySecret).update(header!).digest('base64');
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      this.cache.delete(key);
      if (cached.expiresAt > this.now()) {
        this.cache.set(key, cached);
        return { kind: 'admin', name: cached.name };
      }
    }

    // An unknown name still pays for PBKDF2, so timing does not tell which names exist.
    const hash = this.admins.get(credentials.name) ?? UNKNOWN_ADMIN_HASH;
    this.passwordChecks++;
    const verified = await verifyPassword(credentials.password, hash);
    if (!verified || hash === UNKNOWN_ADMIN_HASH) {
      return { kind: 'rejected', name: credentials.name };
    }
    this.remember(key, credentials.name);
    return { kind: 'admin', name: credentials.name };
  }

  private remember(key: string, name: string): void {
    this.cache.set(key, { name, expiresAt: this.now() + this.cacheTtlMs });
    while (this.cache.size > this.cacheEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  /** Number of cached credentials. */
  get cacheSize(): number {
    return this.cache.size;
  }
}
