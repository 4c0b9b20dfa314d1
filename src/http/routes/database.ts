/**
 * Database routes: `PUT`, `GET`, `HEAD` and `DELETE /{db}`, and the small per-database
 * endpoints `_ensure_full_commit`, `_revs_limit`, `_security`, `_compact` and `_raft`.
 *
 * `GET /{db}` answers with CouchDB 3.x's members, in its order; `instance_start_time` is
 * always `"0"`, as in CouchDB 2 and later, and `compact_running` is this node's replica's.
 * `PUT /{db}` accepts and ignores `q`, `n` and `partitioned`: every Divan database is one
 * shard replicated on every member. `POST /{db}/_compact` answers 202 once every node has been
 * asked to compact its file.
 */
import {
  decodeMember,
  kindAt,
  minifyJson,
  type ScannedValue,
  scanJson,
} from '../../document/json.js';
import { errors } from '../../util/couch-error.js';
import type { DatabaseInfo, DatabaseSnapshot } from '../backend.js';
import type { RequestScope } from '../context.js';
import { validateDatabaseName } from '../request-target.js';

/** CouchDB 3.x's on-disk format version, reported for compatibility. */
const DISK_FORMAT_VERSION = 8;

/** Opens a snapshot of `db`, runs `read`, and closes the snapshot whatever happens. */
export async function withSnapshot<T>(
  scope: RequestScope,
  db: string,
  read: (snapshot: DatabaseSnapshot) => T | Promise<T>,
): Promise<T> {
  const snapshot = await scope.backend.snapshot(db, scope.consistency());
  try {
    return await read(snapshot);
  } finally {
    snapshot.close();
  }
}

export function databaseInfoJson(db: string, info: DatabaseInfo): Record<string, unknown> {
  return {
    instance_start_time: '0',
    db_name: db,
    purge_seq: info.purgeSeq,
    update_seq: info.updateSeq,
    sizes: { file: info.sizes.file, external: info.sizes.external, active: info.sizes.active },
    props: {},
    doc_del_count: info.docDelCount,
    doc_count: info.docCount,
    disk_format_version: DISK_FORMAT_VERSION,
    compact_running: info.compactRunning,
    cluster: info.cluster,
  };
}

export async function handleDatabaseInfo(scope: RequestScope, db: string): Promise<void> {
  const info = await withSnapshot(scope, db, (snapshot) => snapshot.info());
  scope.sendJson(200, databaseInfoJson(db, info));
}

export async function handleCreateDatabase(scope: RequestScope, db: string): Promise<void> {
  validateDatabaseName(db);
  const outcome = await scope.backend.createDatabase(db);
  if (outcome === 'exists') throw errors.dbExists();
  const location = `${scope.origin()}/${encodeURIComponent(db)}`;
  scope.sendJson(201, { ok: true }, { location });
}

export async function handleDeleteDatabase(scope: RequestScope, db: string): Promise<void> {
  if (scope.query.has('rev')) {
    throw errors.badRequest(
      'You tried to DELETE a database with a ?rev= parameter. Did you mean to DELETE a document instead?',
    );
  }
  const outcome = await scope.backend.deleteDatabase(db);
  if (outcome === 'missing') throw errors.dbNotFound();
  scope.sendJson(200, { ok: true });
}

export async function handleEnsureFullCommit(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  await withSnapshot(scope, db, () => undefined);
  // Every acknowledged write is already durable on a majority, so there is nothing to flush.
  scope.sendJson(201, { ok: true, instance_start_time: '0' });
}

export async function handleGetRevsLimit(scope: RequestScope, db: string): Promise<void> {
  const limit = await withSnapshot(scope, db, (snapshot) => snapshot.revsLimit());
  scope.sendJson(200, limit);
}

export async function handlePutRevsLimit(scope: RequestScope, db: string): Promise<void> {
  const scanned = scope.jsonBody();
  const text = scanned.bytes.toString('latin1', scanned.start, scanned.end);
  const limit = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw errors.badRequest('The revs limit must be a positive integer.');
  }
  await scope.backend.setRevsLimit(db, limit);
  scope.sendJson(200, { ok: true });
}

export async function handleGetSecurity(scope: RequestScope, db: string): Promise<void> {
  const security = await withSnapshot(scope, db, (snapshot) => snapshot.security());
  scope.sendJsonBytes(200, security);
}

/** Checks `admins` and `members` of a `_security` object: `names` and `roles` string lists. */
function validateSecurity(scanned: ScannedValue): void {
  for (const member of scanned.members) {
    if (member.key !== 'admins' && member.key !== 'members') continue;
    if (kindAt(scanned.bytes, member.valueStart) !== 'object') {
      throw errors.badRequest(`The security object's ${member.key} must be a JSON object.`);
    }
    const group = scanJson(scanned.bytes, { start: member.valueStart, end: member.end });
    for (const list of group.members) {
      if (list.key !== 'names' && list.key !== 'roles') continue;
      const value = decodeMember(group, list);
      if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
        throw errors.badRequest(
          `The security object's ${member.key}.${list.key} must be a list of strings.`,
        );
      }
    }
  }
}

export async function handlePutSecurity(scope: RequestScope, db: string): Promise<void> {
  const scanned = scope.jsonObjectBody();
  validateSecurity(scanned);
  const bytes = minifyJson(scanned.bytes, scanned.start, scanned.end);
  await scope.backend.setSecurity(db, Buffer.from(bytes));
  scope.sendJson(200, { ok: true });
}

/** Raises 501 for a route whose backend method is missing (see `HttpBackend`). */
export function requireBackendMethod<T>(method: T | undefined, route: string): T {
  if (method === undefined)
    throw errors.notImplemented(`This node does not implement ${route} yet.`);
  return method;
}

export async function handleCompact(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const compact = requireBackendMethod(scope.backend.compact, '_compact');
  await compact.call(scope.backend, db);
  scope.sendJson(202, { ok: true });
}

export async function handleDatabaseRaft(scope: RequestScope, db: string): Promise<void> {
  scope.sendJson(200, await scope.backend.raftStatus(db));
}

/** `POST /{db}/_raft/transfer` with `{"to": NODE}`: moves the group's leadership to NODE. */
export async function handleRaftTransfer(scope: RequestScope, db: string): Promise<void> {
  const scanned = scope.jsonObjectBody();
  const member = scanned.members.find((candidate) => candidate.key === 'to');
  const to = member === undefined ? undefined : decodeMember(scanned, member);
  if (typeof to !== 'string' || to.length === 0) {
    throw errors.badRequest('The body must be {"to": NODE} with the name of a member node.');
  }
  const leader = await scope.backend.transferLeader(db, to);
  scope.sendJson(200, { ok: true, leader });
}
