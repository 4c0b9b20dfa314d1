/**
 * Who a request comes from and whether it may go on, decided before its body is read:
 *
 * 1. Identity: `Authorization: Basic` credentials (wrong ones are a 401 on every route, as in
 *    CouchDB), else a valid `AuthSession` cookie, else anonymous. An invalid or expired
 *    cookie counts as no cookie.
 * 2. Access (router.ts `requiredAccess`): server routes need a server admin. Database routes
 *    need a member or a database admin of that database's `_security` as this node has
 *    applied it. When that copy denies a request that changes something, the check is repeated
 *    after a read barrier, so a lagging copy delays nobody who was just given access.
 *    `_users` has its own rules (`checkUsersRequest`).
 * 3. Writes: route handlers see the backend through `AuthorizingBackend`, which attaches the
 *    caller and the access level each write needs, so the group's leader checks it against
 *    its own applied `_security` (src/cluster/node.ts). The early check in step 2 only saves
 *    reading the body of a request that would be rejected.
 */
import type { FastifyRequest } from 'fastify';
import {
  ADMIN_ROLE,
  ANONYMOUS_USER,
  checkDatabaseAccess,
  type DatabaseAccess,
  type DefaultSecurity,
  denial,
  isServerAdmin,
  parseSecurity,
  type SecurityObject,
  type UserContext,
  type WriteAuthorization,
} from '../security/access.js';
import {
  parseSession,
  readCookie,
  SESSION_COOKIE,
  type SessionClaim,
  signSession,
  verifySession,
} from '../security/cookie.js';
import { errors } from '../util/couch-error.js';
import type { Authenticator, AuthOutcome } from './auth.js';
import type {
  Consistency,
  DatabaseSnapshot,
  HttpBackend,
  WriteRequest,
  WriteResult,
} from './backend.js';
import type { PathSegment } from './request-target.js';
import type { AccessRule } from './router.js';
import { readIfExists } from './snapshot-read.js';
import { prepareUserWrite, USER_ID_PREFIX, USERS_DB, userDocId } from './users.js';

const MS_PER_SECOND = 1000;
/** A session cookie is replaced once it has used 1/10 of its lifetime, as CouchDB does. */
const REFRESH_FRACTION_DENOMINATOR = 10;
/** CouchDB's default `[chttpd_auth] timeout`: a session lasts 10 minutes. */
export const DEFAULT_SESSION_TIMEOUT_S = 600;

const NOT_SERVER_ADMIN = 'You are not a server admin.';
const WRONG_CREDENTIALS = 'Name or password is incorrect.';
const NOT_USERS_ADMIN = 'You are not a server admin.';

/** The security settings of one HTTP server. */
export interface SecuritySettings {
  /** Signs `AuthSession` cookies; null turns cookie sessions off (POST /_session fails). */
  readonly cookieSecret: Buffer | null;
  /** How long a session cookie stays valid, in seconds. */
  readonly sessionTimeoutS: number;
  /** Whether cookies carry `Secure` (set when the HTTP port serves TLS). */
  readonly secureCookies: boolean;
  /** The access to a database whose `_security` names no members. */
  readonly defaultSecurity: DefaultSecurity;
  /** PBKDF2 iterations for passwords set in `_users`. */
  readonly passwordIterations: number;
}

/** The authentication method of the caller, as `GET /_session` reports it. */
export type AuthMethod = 'default' | 'cookie' | null;

export interface Identity {
  readonly user: UserContext;
  readonly method: AuthMethod;
  /** A fresh `Set-Cookie` value, when the session cookie has used a tenth of its lifetime. */
  readonly refreshedCookie?: string;
}

const EMPTY_SECURITY: SecurityObject = parseSecurity('{}');

const ANONYMOUS_IDENTITY: Identity = Object.freeze({ user: ANONYMOUS_USER, method: null });

/** Returns the userCtx of an authenticated outcome. */
export function userOf(outcome: Extract<AuthOutcome, { kind: 'admin' | 'user' }>): UserContext {
  if (outcome.kind === 'admin') return { name: outcome.name, roles: [ADMIN_ROLE] };
  return { name: outcome.name, roles: outcome.roles };
}

/** Identifies the caller; raises 401 for wrong Basic credentials. */
export async function identify(
  request: FastifyRequest,
  authenticator: Authenticator,
  settings: SecuritySettings,
): Promise<Identity> {
  const outcome = await authenticator.authenticate(request.headers.authorization);
  if (outcome.kind === 'rejected') throw errors.unauthorized(WRONG_CREDENTIALS);
  if (outcome.kind !== 'anonymous') return { user: userOf(outcome), method: 'default' };
  if (settings.cookieSecret === null) return ANONYMOUS_IDENTITY;
  const value = readCookie(request.headers.cookie, SESSION_COOKIE);
  if (value === undefined || value === '') return ANONYMOUS_IDENTITY;
  const claim = parseSession(value);
  if (claim === null) return ANONYMOUS_IDENTITY;
  return (await verifyCookie(claim, authenticator, settings)) ?? ANONYMOUS_IDENTITY;
}

async function verifyCookie(
  claim: SessionClaim,
  authenticator: Authenticator,
  settings: SecuritySettings,
): Promise<Identity | null> {
  const credential = await authenticator.sessionCredential(claim.name);
  if (credential === null || settings.cookieSecret === null) return null;
  const nowS = Math.floor(Date.now() / MS_PER_SECOND);
  const valid = verifySession(
    settings.cookieSecret,
    claim,
    credential.salt,
    nowS,
    settings.sessionTimeoutS,
  );
  if (!valid) return null;
  const user = userOf(credential.outcome);
  const elapsedS = nowS - claim.issuedAtS;
  if (elapsedS * REFRESH_FRACTION_DENOMINATOR < settings.sessionTimeoutS) {
    return { user, method: 'cookie' };
  }
  return {
    user,
    method: 'cookie',
    refreshedCookie: issueCookie(settings, claim.name, credential.salt),
  };
}

/** Builds the `Set-Cookie` value of a session cookie (an empty value with `Max-Age=0` clears it). */
export function sessionCookie(settings: SecuritySettings, value: string, maxAgeS: number): string {
  const secure = settings.secureCookies ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Version=1; Path=/; Max-Age=${maxAgeS}; HttpOnly; SameSite=Lax${secure}`;
}

/** Issues a `Set-Cookie` value for `name` logged in now, bound to its password salt. */
export function issueCookie(settings: SecuritySettings, name: string, salt: string): string {
  if (settings.cookieSecret === null) {
    throw errors.notImplemented('Cookie sessions are off: this server has no cookie secret.');
  }
  const nowS = Math.floor(Date.now() / MS_PER_SECOND);
  const value = signSession(settings.cookieSecret, name, nowS, salt);
  return sessionCookie(settings, value, settings.sessionTimeoutS);
}

/**
 * Reads the `_security` this node has applied for `db`; null when the database is missing, also
 * after a read barrier (this node may not have applied the database's creation yet).
 */
async function appliedSecurity(
  backend: HttpBackend,
  db: string,
  consistency: Consistency,
): Promise<SecurityObject | null> {
  const read = (snapshot: DatabaseSnapshot) => parseSecurity(snapshot.security());
  const security = await readIfExists(backend, db, consistency, read);
  if (security !== null || consistency === 'linearizable') return security;
  return readIfExists(backend, db, 'linearizable', read);
}

/** Raises the CouchDB error that stops the request, or returns when it may go on. */
export async function authorizeRequest(
  rule: AccessRule,
  segments: readonly PathSegment[],
  method: string,
  user: UserContext,
  backend: HttpBackend,
  settings: SecuritySettings,
): Promise<void> {
  if (rule.kind === 'public' || rule.kind === 'session' || isServerAdmin(user)) return;
  if (rule.kind === 'server_admin') throw errors.unauthorized(NOT_SERVER_ADMIN);
  if (rule.db === USERS_DB) {
    checkUsersRequest(segments, method, user);
    return;
  }
  // A missing database is checked as one with an empty `_security`, so callers who could not
  // read it learn nothing about which databases exist.
  const local = (await appliedSecurity(backend, rule.db, 'stale')) ?? EMPTY_SECURITY;
  const denied = checkDatabaseAccess(user, local, rule.access, settings.defaultSecurity);
  if (denied === null) return;
  if (method === 'GET' || method === 'HEAD') throw denied;
  const current = (await appliedSecurity(backend, rule.db, 'linearizable')) ?? EMPTY_SECURITY;
  const deniedNow = checkDatabaseAccess(user, current, rule.access, settings.defaultSecurity);
  if (deniedNow !== null) throw deniedNow;
}

/**
 * `_users` for callers who are not server admins: they may read their own user document, and
 * write user documents (create, or change their own; users.ts checks each document). Every
 * other route of `_users` needs a server admin.
 */
export function checkUsersRequest(
  segments: readonly PathSegment[],
  method: string,
  user: UserContext,
): void {
  const id = segments.length === 2 ? segments[1]!.text : null;
  if (segments.length === 1 && method === 'POST') return;
  if (segments.length === 2 && segments[1]!.text === '_bulk_docs' && method === 'POST') return;
  if (id === null || !id.startsWith(USER_ID_PREFIX)) {
    throw denial(user, NOT_USERS_ADMIN, NOT_USERS_ADMIN);
  }
  if (method === 'PUT' || method === 'DELETE') return;
  if (method !== 'GET' && method !== 'HEAD') throw denial(user, NOT_USERS_ADMIN, NOT_USERS_ADMIN);
  if (user.name === null) throw errors.unauthorized('You are not authorized to access this db.');
  // Another user's document is reported missing, so names cannot be probed.
  if (id !== userDocId(user.name)) throw errors.docNotFound('missing');
}

/** Returns the access level a write of these documents needs. */
function writeAccess(request: WriteRequest): DatabaseAccess {
  return request.docs.some((doc) => doc.kind === 'design') ? 'admin' : 'member';
}

/**
 * Wraps the backend for one request's route handlers: every write carries the caller and the
 * access it needs, and writes to `_users` are checked and their passwords hashed first. Every
 * other method is the inner backend's, bound to it; a Proxy keeps that true for methods added
 * to `HttpBackend` later.
 */
export function authorizingBackend(
  inner: HttpBackend,
  user: UserContext,
  settings: SecuritySettings,
): HttpBackend {
  const overrides: Partial<HttpBackend> = {
    write: (db, request) => authorizedWrite(inner, user, settings, db, request),
    setRevsLimit: (db, limit) => inner.setRevsLimit(db, limit, { user, access: 'admin' }),
    setSecurity: (db, security) => inner.setSecurity(db, security, { user, access: 'admin' }),
  };
  return new Proxy(inner, {
    get(target, property) {
      const override = overrides[property as keyof HttpBackend];
      if (override !== undefined) return override;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function authorizedWrite(
  inner: HttpBackend,
  user: UserContext,
  settings: SecuritySettings,
  db: string,
  request: WriteRequest,
): Promise<WriteResult[]> {
  if (db !== USERS_DB) return inner.write(db, request, { user, access: writeAccess(request) });
  const prepared = await prepareUserWrite(inner, user, request, settings.passwordIterations);
  const docs = prepared.flatMap((item) => (item.ok ? [item.doc] : []));
  const authorization: WriteAuthorization = isServerAdmin(user)
    ? { user, access: writeAccess(request) }
    : { user, access: 'user_document' };
  const written =
    docs.length === 0 ? [] : await inner.write(db, { ...request, docs }, authorization);
  let next = 0;
  return prepared.map((item) => (item.ok ? written[next++]! : item.result));
}
