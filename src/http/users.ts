/**
 * The `_users` database: user documents `org.couchdb.user:NAME` with
 * `{"name": NAME, "type": "user", "roles": [...], "password": ...}`, and the rules CouchDB 3.x
 * applies to them.
 *
 * - A clear `password` is replaced, before the write is proposed, by `password_scheme`
 *   `pbkdf2`, `pbkdf2_prf` `sha256`, `iterations`, a fresh 16-byte hex `salt` and
 *   `derived_key`, so every replica stores the same document and none stores the password.
 * - A server admin may write any document. Anyone else (anonymous callers included, which is
 *   how users sign up) may create a user document with no roles, and may update or delete only
 *   their own document, keeping its roles. Design, local and replicated writes need a server
 *   admin.
 * - Documents are checked as CouchDB's `_design/_auth` checks them: `type` is `user`, `name`
 *   is a string matching the id, `roles` is a list of strings. Divan also rejects names and
 *   roles starting with `_`, so no document can grant `_admin`.
 *
 * `userStore` reads users for authentication from the replica of the node serving the request.
 *
 * NOTE: a user document's body is re-encoded with `JSON.parse`/`JSON.stringify` when its
 * password is hashed, so integers beyond 2^53 in other members of that document lose precision.
 */
import { isServerAdmin, USERS_DATABASE, type UserContext } from '../security/access.js';
import { CouchError, errors, isCouchError } from '../util/couch-error.js';
import {
  DEFAULT_PBKDF2_ITERATIONS,
  derivePasswordHash,
  passwordHashFromParts,
  type StoredUser,
  type UserStore,
} from './auth.js';
import type {
  Consistency,
  DatabaseSnapshot,
  HttpBackend,
  WriteDocument,
  WriteRequest,
  WriteResult,
} from './backend.js';
import { readIfExists } from './snapshot-read.js';

export const USERS_DB = USERS_DATABASE;
export const USER_ID_PREFIX = 'org.couchdb.user:';

/** Returns the `_users` document id of `name`. */
export function userDocId(name: string): string {
  return `${USER_ID_PREFIX}${name}`;
}

type Fields = Record<string, unknown>;

function parseFields(body: Buffer): Fields | null {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Fields)
      : null;
  } catch {
    return null;
  }
}

function rolesOf(fields: Fields): string[] {
  const roles = fields.roles;
  return Array.isArray(roles)
    ? roles.filter((role): role is string => typeof role === 'string')
    : [];
}

/** Reads the name, roles and password hash of a stored user document body. */
export function storedUserFromBody(name: string, body: Buffer): StoredUser | null {
  const fields = parseFields(body);
  if (fields === null || fields.type !== 'user' || fields.name !== name) return null;
  const { derived_key: key, salt, iterations, pbkdf2_prf: prf } = fields;
  const usable =
    fields.password_scheme === 'pbkdf2' &&
    typeof key === 'string' &&
    typeof salt === 'string' &&
    typeof iterations === 'number' &&
    (prf === undefined || typeof prf === 'string');
  const hash = usable
    ? passwordHashFromParts(prf as string | undefined, key as string, salt as string, iterations)
    : null;
  return { name, roles: rolesOf(fields), hash };
}

function readUser(snapshot: DatabaseSnapshot, name: string): StoredUser | null {
  const record = snapshot.document(userDocId(name));
  if (record === null || record.deleted) return null;
  const content = record.content(record.winner);
  return content === null ? null : storedUserFromBody(name, content.body);
}

function findUserWith(
  backend: HttpBackend,
  name: string,
  consistency: Consistency,
): Promise<StoredUser | null> {
  return readIfExists(backend, USERS_DB, consistency, (snapshot) => readUser(snapshot, name));
}

/**
 * Looks users up in this node's `_users`; a name it does not have is looked up again
 * after a read barrier, so a user created on another node a moment ago can log in at once.
 */
export function userStore(backend: HttpBackend): UserStore {
  return {
    findUser: async (name) =>
      (await findUserWith(backend, name, 'stale')) ??
      (await findUserWith(backend, name, 'linearizable')),
  };
}

function forbidden(reason: string): CouchError {
  return errors.forbidden(reason);
}

/** Checks the members every stored user document needs; raises 403 `forbidden`. */
function validateUserFields(id: string, fields: Fields): void {
  if (!id.startsWith(USER_ID_PREFIX)) {
    throw forbidden(`Document ids in ${USERS_DB} must have the form ${USER_ID_PREFIX}NAME.`);
  }
  if (fields.type !== 'user') throw forbidden('doc.type must be user');
  const name = fields.name;
  if (typeof name !== 'string' || name.length === 0) {
    throw forbidden('doc.name must be a non-empty string');
  }
  if (id !== userDocId(name)) {
    throw forbidden(`Document id must be ${userDocId(name)} for the user named ${name}.`);
  }
  if (name.startsWith('_')) throw forbidden('Names starting with _ are reserved.');
  const roles = fields.roles;
  if (!Array.isArray(roles) || !roles.every((role) => typeof role === 'string')) {
    throw forbidden('doc.roles must be a list of strings');
  }
  if (roles.some((role: string) => role.startsWith('_'))) {
    throw forbidden('Roles starting with _ are reserved to the system.');
  }
  if (fields.password !== undefined && typeof fields.password !== 'string') {
    throw forbidden('doc.password must be a string');
  }
}

/** Replaces a clear `password` by its PBKDF2 hash members. */
async function hashPasswordField(fields: Fields, iterations: number): Promise<Fields> {
  if (typeof fields.password !== 'string') return fields;
  const { password, ...rest } = fields;
  const hash = await derivePasswordHash(password, iterations);
  return {
    ...rest,
    password_scheme: 'pbkdf2',
    pbkdf2_prf: hash.prf,
    iterations: hash.iterations,
    salt: hash.salt,
    derived_key: hash.derivedKey.toString('hex'),
  };
}

/** Reads the roles of the revision a write replaces (after a read barrier). */
async function replacedRoles(
  backend: HttpBackend,
  doc: WriteDocument,
): Promise<{ exists: boolean; roles: string[] }> {
  const rev = doc.revisions.ids[0];
  if (rev === undefined) return { exists: false, roles: [] };
  const snapshot = await backend.snapshot(USERS_DB, 'linearizable');
  try {
    const record = snapshot.document(doc.id);
    const content = record?.content({ pos: doc.revisions.start, id: rev }) ?? null;
    const fields = content === null ? null : parseFields(content.body);
    return { exists: fields !== null, roles: fields === null ? [] : rolesOf(fields) };
  } finally {
    snapshot.close();
  }
}

function sameRoles(left: readonly string[], right: readonly string[]): boolean {
  return left.length === right.length && left.every((role, i) => role === right[i]);
}

/** Applies the non-admin rules to one document; raises 403 or 401 when it is not allowed. */
async function checkOwnWrite(
  backend: HttpBackend,
  user: UserContext,
  doc: WriteDocument,
  fields: Fields | null,
): Promise<void> {
  if (doc.kind !== 'normal') throw denyUsers(user, 'Only server admins may write this document.');
  const own = user.name !== null && doc.id === userDocId(user.name);
  const replaced = await replacedRoles(backend, doc);
  if (replaced.exists && !own) {
    throw denyUsers(user, 'You may only update your own user document.');
  }
  if (doc.deleted) {
    if (!own) throw denyUsers(user, 'You may only delete your own user document.');
    return;
  }
  const roles = fields === null ? [] : rolesOf(fields);
  if (!sameRoles(roles, replaced.roles)) throw forbidden('Only server admins may change roles.');
}

function denyUsers(user: UserContext, reason: string): CouchError {
  return user.name === null
    ? new CouchError(401, 'unauthorized', reason)
    : new CouchError(403, 'forbidden', reason);
}

/** One prepared document: the document to propose, or the error it gets instead. */
export type PreparedUserDocument =
  | { readonly ok: true; readonly doc: WriteDocument }
  | { readonly ok: false; readonly result: Extract<WriteResult, { ok: false }> };

/**
 * Checks and prepares the documents of a write to `_users`: validates each live document,
 * applies the rules for callers who are not server admins, and hashes clear passwords. A
 * document that breaks a rule gets its error as a result; the others are written.
 */
export async function prepareUserWrite(
  backend: HttpBackend,
  user: UserContext,
  request: WriteRequest,
  iterations = DEFAULT_PBKDF2_ITERATIONS,
): Promise<PreparedUserDocument[]> {
  const admin = isServerAdmin(user);
  if (!admin && !request.newEdits) {
    throw denyUsers(user, `Only server admins may replicate into ${USERS_DB}.`);
  }
  const prepared: PreparedUserDocument[] = [];
  for (const doc of request.docs) {
    try {
      prepared.push({ ok: true, doc: await prepareOne(backend, user, admin, doc, iterations) });
    } catch (error) {
      if (!isCouchError(error)) throw error;
      prepared.push({
        ok: false,
        result: { ok: false, id: doc.id, error: error.error, reason: error.reason },
      });
    }
  }
  return prepared;
}

async function prepareOne(
  backend: HttpBackend,
  user: UserContext,
  admin: boolean,
  doc: WriteDocument,
  iterations: number,
): Promise<WriteDocument> {
  if (doc.kind !== 'normal' && admin) return doc;
  const fields = doc.deleted ? null : parseFields(doc.body);
  if (!doc.deleted) {
    if (fields === null) throw errors.notAnObject();
    validateUserFields(doc.id, fields);
  }
  if (!admin) await checkOwnWrite(backend, user, doc, fields);
  if (fields === null || typeof fields.password !== 'string') return doc;
  const hashed = await hashPasswordField(fields, iterations);
  return { ...doc, body: Buffer.from(JSON.stringify(hashed)) };
}
