/**
 * Authentication: server admins (from the configuration) and users (documents of `_users`),
 * by HTTP Basic or by a password posted to `/_session`, as CouchDB 3.x checks them.
 *
 * Stored passwords use CouchDB's PBKDF2 form: `-pbkdf2:<prf>-<derived key hex>,<salt>,<iterations>`,
 * where the salt is used as text (CouchDB's salts are 32 hex characters) and the key length
 * is the PRF's digest length. `-pbkdf2-...` (no PRF) means SHA-1, CouchDB's older default.
 * `hashPassword` writes the SHA-256 form with a fresh random salt per user. A `_users`
 * document stores the same facts as members (`derived_key`, `salt`, `iterations`,
 * `pbkdf2_prf`); src/http/users.ts reads them.
 *
 * Checking a password costs a PBKDF2 run (tens of milliseconds at CouchDB's 50,000
 * iterations), so verified credentials are cached: the key is an HMAC-SHA256, under a secret
 * made at startup, of the name and password, so the cache holds no password. The cache is
 * bounded (least recently used goes first) and entries expire. A cached user is looked up
 * again on every hit (a local read), so a changed password or a deleted user takes effect at
 * once, and the roles are always the current ones. Only successes are cached, so a wrong
 * password always pays for PBKDF2. Derived keys are compared in constant time.
 *
 * Repeated failures for one name are slowed down: past `freeFailures` failures, each attempt
 * waits before its check, twice as long after each further failure up to `maxFailureDelayMs`.
 * A success, or `failureWindowMs` without failures, forgets them.
 *
 * What this does not do: cookies (src/security/cookie.ts), proxy or JWT authentication,
 * CouchDB's older `simple` (SHA-1) password scheme.
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

/** Derives a SHA-256 PBKDF2 hash of a password with a fresh random salt. */
export async function derivePasswordHash(
  password: string,
  iterations = DEFAULT_PBKDF2_ITERATIONS,
): Promise<PasswordHash> {
  assert(Number.isSafeInteger(iterations) && iterations >= 1, 'iterations must be positive');
  const salt = randomBytes(SALT_BYTES).toString('hex');
  const derivedKey = await derive(password, { prf: 'sha256', salt, iterations });
  return { prf: 'sha256', derivedKey, salt, iterations };
}

/** Hashes a password into CouchDB's `-pbkdf2:sha256-` form with a fresh random salt. */
export async function hashPassword(
  password: string,
  iterations = DEFAULT_PBKDF2_ITERATIONS,
): Promise<string> {
  const hash = await derivePasswordHash(password, iterations);
  return `-pbkdf2:sha256-${hash.derivedKey.toString('hex')},${hash.salt},${iterations}`;
}

/**
 * Builds a hash from the members of a `_users` document, or returns null when they are not a
 * valid PBKDF2 hash. `prf` defaults to `sha`, as CouchDB reads documents without `pbkdf2_prf`.
 */
export function passwordHashFromParts(
  prf: string | undefined,
  derivedKeyHex: string,
  salt: string,
  iterations: number,
): PasswordHash | null {
  if (!Number.isSafeInteger(iterations)) return null;
  return parsePasswordHash(`-pbkdf2:${prf ?? 'sha'}-${derivedKeyHex},${salt},${iterations}`);
}

/** Checks a password against a stored hash in constant time (for a given key length). */
export async function verifyPassword(password: string, hash: PasswordHash): Promise<boolean> {
  const derived = await derive(password, hash);
  return derived.length === hash.derivedKey.length && timingSafeEqual(derived, hash.derivedKey);
}

/** A user of `_users`: name, roles and stored password. */
export interface StoredUser {
  readonly name: string;
  readonly roles: readonly string[];
  /** Null when the document holds no valid hash, so the user cannot log in. */
  readonly hash: PasswordHash | null;
}

/** Where users are looked up: the `_users` database, read on the answering node. */
export interface UserStore {
  /** The user named `name`, or null when there is none (or no `_users` database). */
  findUser(name: string): Promise<StoredUser | null>;
}

/** Outcome of checking a name and password. */
export type AuthOutcome =
  /** No usable `Authorization: Basic` header. */
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'admin'; readonly name: string }
  | { readonly kind: 'user'; readonly name: string; readonly roles: readonly string[] }
  /** A name that is neither an admin nor a user, or a wrong password. */
  | { readonly kind: 'rejected'; readonly name: string };

/** A known name with the salt its session cookies are bound to (see src/security/cookie.ts). */
export interface SessionCredential {
  readonly outcome: Extract<AuthOutcome, { kind: 'admin' | 'user' }>;
  readonly salt: string;
}

/** Checked for names that are not admins; `authenticate` rejects it even if a key matched. */
const UNKNOWN_ADMIN_HASH: PasswordHash = Object.freeze({
  prf: 'sha256',
  derivedKey: Buffer.alloc(PRF_KEY_BYTES.sha256!),
  salt: '00000000000000000000000000000000',
  iterations: DEFAULT_PBKDF2_ITERATIONS,
});

const ANONYMOUS: AuthOutcome = Object.freeze({ kind: 'anonymous' });

const DEFAULT_FREE_FAILURES = 5;
const DEFAULT_FAILURE_DELAY_MS = 100;
const DEFAULT_MAX_FAILURE_DELAY_MS = 5_000;
const DEFAULT_FAILURE_WINDOW_MS = 5 * 60 * 1000;
const DEFAULT_FAILURE_ENTRIES = 10_000;

export interface AuthenticatorOptions {
  /** Maximum cached verified credentials. */
  readonly cacheEntries?: number;
  /** How long a verified credential stays cached, in milliseconds. */
  readonly cacheTtlMs?: number;
  /** Failures of one name that are checked without delay. */
  readonly freeFailures?: number;
  /** Delay of the first slowed attempt, in milliseconds; it doubles with each failure. */
  readonly failureDelayMs?: number;
  /** Cap of the delay, in milliseconds. */
  readonly maxFailureDelayMs?: number;
  /** Failures are forgotten this long after the last one, in milliseconds. */
  readonly failureWindowMs?: number;
  /** Names whose failures are tracked at once (least recently failed go first). */
  readonly failureEntries?: number;
  /** Clock for cache expiry and failures, in milliseconds; `Date.now` when absent. */
  readonly now?: () => number;
  /** Waits before a slowed attempt; a timer when absent (tests count the waits instead). */
  readonly sleep?: (ms: number) => Promise<void>;
}

interface CacheEntry {
  readonly name: string;
  /** For a user: the derived key the password matched, to notice a changed password. */
  readonly userKey: Buffer | null;
  readonly expiresAt: number;
}

interface FailureEntry {
  count: number;
  lastAt: number;
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

const NO_USERS: UserStore = { findUser: async () => null };

/** Verifies names and passwords against server admins and `_users`, with a cache of successes. */
export class Authenticator {
  private readonly admins = new Map<string, PasswordHash>();
  private readonly cache = new Map<string, CacheEntry>();
  private readonly failures = new Map<string, FailureEntry>();
  private readonly cacheKeySecret = randomBytes(CACHE_KEY_SECRET_BYTES);
  private readonly cacheEntries: number;
  private readonly cacheTtlMs: number;
  private readonly options: AuthenticatorOptions;
  private readonly now: () => number;
  /** PBKDF2 runs so far, for tests and metrics. */
  passwordChecks = 0;
  /** Attempts slowed down because of earlier failures, for tests and metrics. */
  slowedAttempts = 0;

  constructor(
    admins: readonly AdminCredential[],
    options: AuthenticatorOptions = {},
    private readonly users: UserStore = NO_USERS,
  ) {
    for (const admin of admins) {
      const hash = parsePasswordHash(admin.passwordHash);
      assert(hash !== null, () => `admin ${admin.name} has no valid PBKDF2 password hash`);
      this.admins.set(admin.name, hash);
    }
    this.options = options;
    this.cacheEntries = options.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
    this.cacheTtlMs = options.cacheTtlMs ?? DEFAULT_CACHE_TTL_MS;
    this.now = options.now ?? Date.now;
    assert(this.cacheEntries >= 1, 'the credential cache needs room for one entry');
  }

  /** Reads the credentials of an `Authorization` header. */
  async authenticate(header: string | undefined): Promise<AuthOutcome> {
    const credentials = parseBasicCredentials(header);
    if (credentials === null) return ANONYMOUS;
    return this.verify(credentials.name, credentials.password);
  }

  /** Checks a name and password (Basic credentials or a `/_session` login). */
  async verify(name: string, password: string): Promise<AuthOutcome> {
    const key = this.cacheKey(name, password);
    const cached = await this.fromCache(key);
    if (cached !== null) return cached;

    await this.slowDownAfterFailures(name);
    const outcome = await this.check(name, password);
    if (outcome.kind === 'rejected') {
      this.recordFailure(name);
      return outcome;
    }
    this.failures.delete(name);
    return outcome;
  }

  /** Returns the admin or user `name` with its salt, for session cookies; null when unknown. */
  async sessionCredential(name: string): Promise<SessionCredential | null> {
    const admin = this.admins.get(name);
    if (admin !== undefined) return { outcome: { kind: 'admin', name }, salt: admin.salt };
    const user = await this.users.findUser(name);
    if (user === null || user.hash === null) return null;
    return { outcome: { kind: 'user', name, roles: user.roles }, salt: user.hash.salt };
  }

  private cacheKey(name: string, password: string): string {
    return createHmac('sha256', this.cacheKeySecret)
      .update(`${name.length}:${name}:${password}`)
      .digest('base64');
  }

  private async fromCache(key: string): Promise<AuthOutcome | null> {
    const cached = this.cache.get(key);
    if (cached === undefined) return null;
    this.cache.delete(key);
    if (cached.expiresAt <= this.now()) return null;
    if (cached.userKey === null) {
      this.cache.set(key, cached);
      return { kind: 'admin', name: cached.name };
    }
    const user = await this.users.findUser(cached.name);
    if (user === null || user.hash === null || !user.hash.derivedKey.equals(cached.userKey)) {
      return null;
    }
    this.cache.set(key, cached);
    return { kind: 'user', name: cached.name, roles: user.roles };
  }

  private async check(name: string, password: string): Promise<AuthOutcome> {
    const adminHash = this.admins.get(name);
    if (adminHash !== undefined) {
      this.passwordChecks++;
      if (!(await verifyPassword(password, adminHash))) return { kind: 'rejected', name };
      this.remember(this.cacheKey(name, password), name, null);
      return { kind: 'admin', name };
    }
    const user = await this.users.findUser(name);
    // An unknown name still pays for PBKDF2, so timing does not tell which names exist.
    const hash = user?.hash ?? UNKNOWN_ADMIN_HASH;
    this.passwordChecks++;
    const verified = await verifyPassword(password, hash);
    if (!verified || user === null || hash === UNKNOWN_ADMIN_HASH) {
      return { kind: 'rejected', name };
    }
    this.remember(this.cacheKey(name, password), name, hash.derivedKey);
    return { kind: 'user', name, roles: user.roles };
  }

  private async slowDownAfterFailures(name: string): Promise<void> {
    const entry = this.failures.get(name);
    if (entry === undefined) return;
    const windowMs = this.options.failureWindowMs ?? DEFAULT_FAILURE_WINDOW_MS;
    if (this.now() - entry.lastAt > windowMs) {
      this.failures.delete(name);
      return;
    }
    const excess = entry.count - (this.options.freeFailures ?? DEFAULT_FREE_FAILURES);
    if (excess < 0) return;
    const base = this.options.failureDelayMs ?? DEFAULT_FAILURE_DELAY_MS;
    const cap = this.options.maxFailureDelayMs ?? DEFAULT_MAX_FAILURE_DELAY_MS;
    const delayMs = Math.min(cap, base * 2 ** Math.min(excess, 30));
    this.slowedAttempts++;
    const sleep = this.options.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
    await sleep(delayMs);
  }

  private recordFailure(name: string): void {
    const entry = this.failures.get(name) ?? { count: 0, lastAt: 0 };
    this.failures.delete(name);
    entry.count++;
    entry.lastAt = this.now();
    this.failures.set(name, entry);
    const maxEntries = this.options.failureEntries ?? DEFAULT_FAILURE_ENTRIES;
    while (this.failures.size > maxEntries) {
      this.failures.delete(this.failures.keys().next().value as string);
    }
  }

  private remember(key: string, name: string, userKey: Buffer | null): void {
    this.cache.set(key, { name, userKey, expiresAt: this.now() + this.cacheTtlMs });
    while (this.cache.size > this.cacheEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.cache.delete(oldest);
    }
  }

  /** Number of cached credentials. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /** Names with failures on record. */
  get trackedFailures(): number {
    return this.failures.size;
  }
}
