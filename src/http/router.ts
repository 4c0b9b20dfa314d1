/**
 * Maps a decoded path and a method to a route handler, as CouchDB 3.x routes:
 *
 * - `/` and server routes starting with `_` (`_up`, `_all_dbs`, `_uuids`, `_node/_local/...`);
 *   any other top-level `_` name that is not a system database gets 404
 *   `Database does not exist.` (and 400 `illegal_database_name` to `PUT`);
 * - `/{db}` and its special routes (`_all_docs`, `_changes`, ...); an invalid database name
 *   gets 404 like a missing database, except to `PUT`;
 * - documents: `/{db}/{id}`, `/{db}/_design/{name}`, `/{db}/_local/{name}`; a deeper path is an
 *   attachment, whose name is the rest of the path (it may contain `/`);
 * - a wrong method on a route gets 405 `method_not_allowed` with an `Allow` header.
 *
 * Routes CouchDB has and Divan does not yet (`_find`, `_index`, view compaction, ...) answer
 * 501. Authorization is decided before this (see `requiredAccess` and gate.ts).
 */
import type { DatabaseAccess } from '../security/access.js';
import { errors } from '../util/couch-error.js';
import type { RequestScope } from './context.js';
import { isValidDatabaseName, type PathSegment } from './request-target.js';
import { handleAllDocs } from './routes/all-docs.js';
import {
  attachmentName,
  handleDeleteAttachment,
  handleGetAttachment,
  handlePutAttachment,
} from './routes/attachment.js';
import { handleBulkDocs, handleBulkGet, handleRevsDiff } from './routes/bulk.js';
import { handleChanges } from './routes/changes.js';
import {
  handleCompact,
  handleCreateDatabase,
  handleDatabaseInfo,
  handleDatabaseRaft,
  handleDeleteDatabase,
  handleEnsureFullCommit,
  handleGetRevsLimit,
  handleGetSecurity,
  handlePutRevsLimit,
  handlePutSecurity,
  handleRaftTransfer,
} from './routes/database.js';
import {
  handleCopyDocument,
  handleDeleteDocument,
  handleGetDocument,
  handlePostDocument,
  handlePutDocument,
} from './routes/document.js';
import {
  handleDeleteNode,
  handleListNodes,
  handleMembership,
  handlePutNode,
} from './routes/membership.js';
import { nodeRoute } from './routes/metrics.js';
import {
  handleGetPurgedInfos,
  handleGetPurgedInfosLimit,
  handlePurge,
  handlePutPurgedInfosLimit,
} from './routes/purge.js';
import {
  handleActiveTasks,
  handleAllDbs,
  handleFaults,
  handleNodeRaft,
  handleSystem,
  handleUp,
  handleUuids,
  handleWelcome,
} from './routes/server.js';
import { handleDeleteSession, handleGetSession, handlePostSession } from './routes/session.js';
import { isPublicAsset, STATUS_PREFIX, statusRoute } from './routes/status.js';
import { fauxtonRoute, UTILS_PREFIX, utilsRoute } from './routes/utils.js';

type Handler = (scope: RequestScope) => void | Promise<void>;
/** Handlers by method; `GET` also serves `HEAD`. */
type MethodTable = Readonly<Partial<Record<string, Handler>>>;

/** Database routes CouchDB 3.x has that Divan does not implement yet. */
const UNIMPLEMENTED_DB_ROUTES: ReadonlySet<string> = new Set([
  '_find',
  '_index',
  '_explain',
  '_view_cleanup',
  '_design_docs',
  '_local_docs',
  '_missing_revs',
  '_shards',
  '_sync_shards',
  '_partition',
]);

/**
 * The access a request needs, decided from its path and method before its body is read:
 * - `public`: anyone (`/`, `/_up`);
 * - `session`: anyone, with credentials checked when present (`/_session`);
 * - `server_admin`: a server admin (every other server route, creating and deleting databases,
 *   a group's Raft routes);
 * - `database`: a member of `db`, or a database admin when `access` is `admin` (design
 *   documents, `_security`, `_revs_limit` and compaction changes). `_users` has its own rules
 *   (see gate.ts).
 */
export type AccessRule =
  | { readonly kind: 'public' }
  | { readonly kind: 'session' }
  | { readonly kind: 'server_admin' }
  | { readonly kind: 'database'; readonly db: string; readonly access: DatabaseAccess };

const PUBLIC: AccessRule = Object.freeze({ kind: 'public' });
const SESSION: AccessRule = Object.freeze({ kind: 'session' });
const SERVER_ADMIN: AccessRule = Object.freeze({ kind: 'server_admin' });

/** Database routes that change the database's settings or files: database admins only. */
const ADMIN_DB_ROUTES: ReadonlySet<string> = new Set([
  '_compact',
  '_view_cleanup',
  '_purge',
  '_purged_infos_limit',
]);

/** Decides the access a request needs (see `AccessRule`). */
export function requiredAccess(segments: readonly PathSegment[], method: string): AccessRule {
  const first = segments[0]?.text;
  if (first === undefined || (first === '_up' && segments.length === 1)) return PUBLIC;
  if (isPublicAsset(segments)) return PUBLIC;
  if (first === '_session' && segments.length === 1) return SESSION;
  if (first.startsWith('_') && !isValidDatabaseName(first)) return SERVER_ADMIN;
  if (segments.length === 1 && (method === 'PUT' || method === 'DELETE')) return SERVER_ADMIN;
  const second = segments[1]?.text;
  if (second === '_raft') return SERVER_ADMIN;
  const reads = method === 'GET' || method === 'HEAD';
  let access: DatabaseAccess = 'member';
  if (second !== undefined && ADMIN_DB_ROUTES.has(second)) access = 'admin';
  if ((second === '_security' || second === '_revs_limit') && !reads) access = 'admin';
  if (second === '_design' && segments.length > 2 && !reads) access = 'admin';
  return { kind: 'database', db: first, access };
}

function allowedMethods(table: MethodTable): string {
  const methods = Object.keys(table);
  if (methods.includes('GET')) methods.push('HEAD');
  return methods.sort().join(',');
}

async function dispatch(scope: RequestScope, table: MethodTable): Promise<void> {
  const method = scope.method === 'HEAD' ? 'GET' : scope.method;
  const handler = table[method];
  if (handler === undefined) {
    const allowed = allowedMethods(table);
    scope.reply.header('allow', allowed);
    throw errors.methodNotAllowed(allowed);
  }
  await handler(scope);
}

function serverRoute(scope: RequestScope, segments: readonly PathSegment[]): MethodTable | null {
  const names = segments.map((segment) => segment.text);
  const [first] = names;
  if (names.length === 1) {
    if (first === '_up') return { GET: handleUp };
    if (first === '_all_dbs') return { GET: handleAllDbs };
    if (first === '_uuids') return { GET: handleUuids };
    if (first === '_active_tasks') return { GET: handleActiveTasks };
  }
  if (names.length === 1 && first === '_membership') return { GET: handleMembership };
  if (names.length === 1 && first === '_session') {
    return { GET: handleGetSession, POST: handlePostSession, DELETE: handleDeleteSession };
  }
  if (first === STATUS_PREFIX) return statusRoute(scope, names);
  if (first === UTILS_PREFIX) return utilsRoute(scope, names);
  const fauxton = fauxtonRoute(names);
  if (fauxton !== null) return fauxton;
  const nodeOps = nodeRoute(scope, names);
  if (nodeOps !== null) return nodeOps;
  if (first === '_node' && names[1] === '_local' && names[2] === '_nodes') {
    if (names.length === 3) return { GET: handleListNodes };
    if (names.length === 4) {
      const name = names[3]!;
      return { PUT: () => handlePutNode(scope, name), DELETE: () => handleDeleteNode(scope, name) };
    }
  }
  if (first === '_node' && names.length === 3 && names[1] === '_local') {
    if (names[2] === '_system') return { GET: handleSystem };
    if (names[2] === '_raft') return { GET: handleNodeRaft };
    if (names[2] === '_faults') return { GET: handleFaults, PUT: handleFaults };
  }
  if (first === '_node') throw errors.notFound('missing');
  // Not a route: CouchDB reads it as a database name.
  if (names.length === 1) {
    return {
      GET: () => Promise.reject(errors.dbNotFound()),
      PUT: () => handleCreateDatabase(scope, first!),
      DELETE: () => Promise.reject(errors.dbNotFound()),
    };
  }
  throw errors.dbNotFound();
}

function databaseTable(scope: RequestScope, db: string): MethodTable {
  return {
    GET: () => handleDatabaseInfo(scope, db),
    PUT: () => handleCreateDatabase(scope, db),
    DELETE: () => handleDeleteDatabase(scope, db),
    POST: () => handlePostDocument(scope, db),
  };
}

function specialTable(scope: RequestScope, db: string, name: string): MethodTable | null {
  switch (name) {
    case '_all_docs':
      return { GET: () => handleAllDocs(scope, db), POST: () => handleAllDocs(scope, db) };
    case '_bulk_docs':
      return { POST: () => handleBulkDocs(scope, db) };
    case '_bulk_get':
      return { POST: () => handleBulkGet(scope, db) };
    case '_changes':
      return { GET: () => handleChanges(scope, db), POST: () => handleChanges(scope, db) };
    case '_revs_diff':
      return { POST: () => handleRevsDiff(scope, db) };
    case '_ensure_full_commit':
      return { POST: () => handleEnsureFullCommit(scope, db) };
    case '_revs_limit':
      return { GET: () => handleGetRevsLimit(scope, db), PUT: () => handlePutRevsLimit(scope, db) };
    case '_security':
      return { GET: () => handleGetSecurity(scope, db), PUT: () => handlePutSecurity(scope, db) };
    case '_raft':
      return { GET: () => handleDatabaseRaft(scope, db) };
    case '_purge':
      return { POST: () => handlePurge(scope, db) };
    case '_purged_infos_limit':
      return {
        GET: () => handleGetPurgedInfosLimit(scope, db),
        PUT: () => handlePutPurgedInfosLimit(scope, db),
      };
    case '_purged_infos':
      return { GET: () => handleGetPurgedInfos(scope, db) };
    case '_compact':
      return { POST: () => handleCompact(scope, db) };
    default:
      return null;
  }
}

function documentTable(scope: RequestScope, db: string, idBytes: Buffer): MethodTable {
  const id = idBytes.toString('utf8');
  return {
    GET: () => handleGetDocument(scope, db, id),
    PUT: () => handlePutDocument(scope, db, idBytes),
    DELETE: () => handleDeleteDocument(scope, db, idBytes),
    COPY: () => handleCopyDocument(scope, db, id),
  };
}

/** Joins `_design` or `_local` with the next segment into one document id. */
function prefixedId(prefix: string, segment: PathSegment): Buffer {
  return Buffer.concat([Buffer.from(`${prefix}/`), segment.bytes]);
}

function databaseRoute(
  scope: RequestScope,
  db: string,
  segments: readonly PathSegment[],
): MethodTable {
  if (segments.length === 1) return databaseTable(scope, db);
  const second = segments[1]!;
  const special = segments.length === 2 ? specialTable(scope, db, second.text) : null;
  if (special !== null) return special;
  if (UNIMPLEMENTED_DB_ROUTES.has(second.text)) {
    throw errors.notImplemented(`Divan does not implement ${second.text} yet.`);
  }

  if (second.text === '_raft' && segments.length === 3 && segments[2]!.text === 'transfer') {
    return { POST: () => handleRaftTransfer(scope, db) };
  }
  if (second.text === '_compact') {
    throw errors.notImplemented('Divan has no views to compact.');
  }

  let idBytes = second.bytes;
  let rest = segments.slice(2);
  if ((second.text === '_design' || second.text === '_local') && rest.length > 0) {
    idBytes = prefixedId(second.text, rest[0]!);
    rest = rest.slice(1);
  }
  if (second.text === '_design' && rest[0]?.text.startsWith('_')) {
    throw errors.notImplemented(`Divan does not implement design document ${rest[0].text} yet.`);
  }
  if (rest.length > 0) return attachmentTable(scope, db, idBytes, rest);
  return documentTable(scope, db, idBytes);
}

function attachmentTable(
  scope: RequestScope,
  db: string,
  idBytes: Buffer,
  rest: readonly PathSegment[],
): MethodTable {
  const name = () => attachmentName(rest);
  return {
    GET: () => handleGetAttachment(scope, db, idBytes.toString('utf8'), name()),
    PUT: () => handlePutAttachment(scope, db, idBytes, name()),
    DELETE: () => handleDeleteAttachment(scope, db, idBytes, name()),
  };
}

/** Routes one request; raises the CouchDB error of a path or method that has no route. */
export async function route(scope: RequestScope): Promise<void> {
  const segments = scope.target.segments;
  if (segments.length === 0) {
    await dispatch(scope, { GET: handleWelcome });
    return;
  }
  const first = segments[0]!.text;
  if (first.startsWith('_') && !isValidDatabaseName(first)) {
    const table = serverRoute(scope, segments);
    if (table !== null) await dispatch(scope, table);
    return;
  }
  scope.facts.db = first;
  const table = databaseRoute(scope, first, segments);
  if (!isValidDatabaseName(first) && !(segments.length === 1 && scope.method === 'PUT')) {
    // Check the method first, so a wrong method still gets 405.
    await dispatch(
      scope,
      mapTable(table, () => Promise.reject(errors.dbNotFound())),
    );
    return;
  }
  await dispatch(scope, table);
}

function mapTable(table: MethodTable, handler: Handler): MethodTable {
  const mapped: Record<string, Handler> = {};
  for (const method of Object.keys(table)) mapped[method] = handler;
  return mapped;
}
