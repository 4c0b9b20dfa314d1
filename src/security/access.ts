/**
 * Per-database access control as CouchDB 3.x decides it, over a database's `_security` object:
 *
 * - a server admin (role `_admin`) may do everything;
 * - a database admin is named in `admins.names` or holds a role of `admins.roles`;
 * - a member is a database admin, or is named in `members.names`, or holds a role of
 *   `members.roles`;
 * - when `members` names nobody and no role, `defaultSecurity` decides: `admin_only` (the
 *   default) lets only admins in, `everyone` lets every caller in, anonymous ones included.
 *
 * Members read and write documents; design documents, `_security`, `_revs_limit` and
 * compaction need a database admin. A denial is 401 for an anonymous caller and 403 for an
 * authenticated one, with CouchDB's reasons.
 *
 * NB: CouchDB writes `default_security` into the `_security` of each database it creates;
 * Divan applies the setting whenever it reads an object with no members, so changing the
 * setting changes every such database at once.
 *
 * Pure functions only: which `_security` applies (a node's applied copy, or the leader's after
 * a read barrier) is the caller's decision.
 */
import { CouchError } from '../util/couch-error.js';

/** The role every server admin holds. */
export const ADMIN_ROLE = '_admin';

/** The caller of a request: CouchDB's `userCtx`. `name` is null for an anonymous caller. */
export interface UserContext {
  readonly name: string | null;
  readonly roles: readonly string[];
}

export const ANONYMOUS_USER: UserContext = Object.freeze({ name: null, roles: Object.freeze([]) });

/** The access to a database with no members: CouchDB's `[couchdb] default_security`. */
export type DefaultSecurity = 'admin_only' | 'everyone';

/** The access level a request needs on one database. */
export type DatabaseAccess = 'member' | 'admin';

/** One side of a `_security` object: `admins` or `members`. */
export interface SecurityGroup {
  readonly names: readonly string[];
  readonly roles: readonly string[];
}

export interface SecurityObject {
  readonly admins: SecurityGroup;
  readonly members: SecurityGroup;
}

/**
 * The caller and access level a write carries to the leader, which checks them against
 * its own applied `_security`. `user_document` is a `_users` write whose owner the receiving
 * node has already checked (see src/http/users.ts); the leader accepts it as it is.
 */
export interface WriteAuthorization {
  readonly user: UserContext;
  readonly access: DatabaseAccess | 'user_document';
}

const EMPTY_GROUP: SecurityGroup = Object.freeze({ names: [], roles: [] });

const NOT_MEMBER_ANONYMOUS = 'You are not authorized to access this db.';
const NOT_MEMBER = 'You are not allowed to access this db.';
const NOT_ADMIN = 'You are not a db or server admin.';

function stringList(value: unknown): string[] {
  if (!Array.isArray(value)) return [];
  return value.filter((item): item is string => typeof item === 'string');
}

function parseGroup(value: unknown): SecurityGroup {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return EMPTY_GROUP;
  const group = value as Record<string, unknown>;
  return { names: stringList(group.names), roles: stringList(group.roles) };
}

/**
 * Parses a stored `_security` object. Members of the wrong type count as empty, because the
 * HTTP layer validates the object before storing it and an old object must not lock anyone out
 * of a database by failing to parse.
 */
export function parseSecurity(bytes: Uint8Array | string): SecurityObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch {
    return { admins: EMPTY_GROUP, members: EMPTY_GROUP };
  }
  if (parsed === null || typeof parsed !== 'object') {
    return { admins: EMPTY_GROUP, members: EMPTY_GROUP };
  }
  const object = parsed as Record<string, unknown>;
  return { admins: parseGroup(object.admins), members: parseGroup(object.members) };
}

export function isServerAdmin(user: UserContext): boolean {
  return user.roles.includes(ADMIN_ROLE);
}

function inGroup(user: UserContext, group: SecurityGroup): boolean {
  if (user.name !== null && group.names.includes(user.name)) return true;
  return user.roles.some((role) => group.roles.includes(role));
}

export function isDatabaseAdmin(user: UserContext, security: SecurityObject): boolean {
  return isServerAdmin(user) || inGroup(user, security.admins);
}

export function isDatabaseMember(
  user: UserContext,
  security: SecurityObject,
  defaultSecurity: DefaultSecurity,
): boolean {
  if (isDatabaseAdmin(user, security)) return true;
  const { names, roles } = security.members;
  if (names.length === 0 && roles.length === 0) return defaultSecurity === 'everyone';
  return inGroup(user, security.members);
}

/** Returns the CouchDB error that denies `user` the `access`, or null when it is allowed. */
export function checkDatabaseAccess(
  user: UserContext,
  security: SecurityObject,
  access: DatabaseAccess,
  defaultSecurity: DefaultSecurity,
): CouchError | null {
  const allowed =
    access === 'admin'
      ? isDatabaseAdmin(user, security)
      : isDatabaseMember(user, security, defaultSecurity);
  if (allowed) return null;
  if (access === 'admin') return denial(user, NOT_ADMIN, NOT_ADMIN);
  return denial(user, NOT_MEMBER_ANONYMOUS, NOT_MEMBER);
}

/** 401 for an anonymous caller (who may log in), 403 for an authenticated one. */
export function denial(user: UserContext, anonymousReason: string, reason: string): CouchError {
  if (user.name === null) return new CouchError(401, 'unauthorized', anonymousReason);
  return new CouchError(403, 'forbidden', reason);
}

/** Parses `admin_only` or `everyone`; null for anything else. */
export function parseDefaultSecurity(text: string): DefaultSecurity | null {
  return text === 'admin_only' || text === 'everyone' ? text : null;
}

/** The database of users (src/http/users.ts has its rules). */
export const USERS_DATABASE = '_users';

const WRITE_ACCESS: ReadonlySet<unknown> = new Set(['member', 'admin', 'user_document']);

/** Checks the shape of a `WriteAuthorization` that arrived from another node. */
export function isWriteAuthorization(value: unknown): value is WriteAuthorization {
  if (value === null || typeof value !== 'object') return false;
  const { user, access } = value as { user?: unknown; access?: unknown };
  if (!WRITE_ACCESS.has(access) || user === null || typeof user !== 'object') return false;
  const { name, roles } = user as { name?: unknown; roles?: unknown };
  if (name !== null && typeof name !== 'string') return false;
  return Array.isArray(roles) && roles.every((role) => typeof role === 'string');
}
