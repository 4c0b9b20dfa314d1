/**
 * Maps a decoded path and a method to a route handler, as CouchDB 3.x routes:
 *
 * - `/` and server routes starting with `_` (`_up`, `_all_dbs`, `_uuids`, `_node/_local/...`);
 *   any other top-level `_` name that is not a system database gets 404
 *   `Database does not exist.` (and 400 `illegal_database_name` to `PUT`);
 * - `/{db}` and its special routes (`_all_docs`, `_changes`, ...); an invalid database name
 *   gets 404 like a missing database, except to `PUT`;
 * - documents: `/{db}/{id}`, `/{db}/_design/{name}`, `/{db}/_local/{name}`; a deeper path is an
 *   attachment, which gets 501 until attachments exist;
 * - a wrong method on a route gets 405 `method_not_allowed` with an `Allow` header.
 *
 * Routes CouchDB has and Divan does not yet (`_find`, `_index`, `_purge`, ...) answer 501.
 * Authorization is decided before this (see `requiredAccess`).
 */

import { errors } from '../util/couch-error.js';
import type { RequestScope } from './context.js';
import { isValidDatabaseName, type PathSegment } from './request-target.js';
import { handleAllDocs } from './routes/all-docs.js';
import { handleBulkDocs, handleBulkGet, handleRevsDiff } from './routes/bulk.js';
import { handleChanges } from './routes/changes.js';
import {
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
  handleAllDbs,
  handleFaults,
  handleNodeRaft,
  handleSystem,
  handleUp,
  handleUuids,
  handleWelcome,
} from './routes/server.js';
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
  '_purge',
  '_purged_infos_limit',
  '_compact',
  '_view_cleanup',
  '_design_docs',
  '_local_docs',
  '_missing_revs',
  '_shards',
  '_sync_shards',
  '_partition',
]);

/** The access a route needs: none, or a server admin (each kind with its CouchDB 401 reason). */
export type Access = 'public' | 'server_admin' | 'database';

/**
 * Decides the access a request needs, before its body is read. The kind only chooses the
 * 401 reason: every request that is not public needs a server admin.
 */
export function requiredAccess(segments: readonly PathSegment[], method: string): Access {
  const first = segments[0]?.text;
  if (first === undefined || (first === '_up' && segments.length === 1)) return 'public';
  if (isPublicAsset(segments)) return 'public';
  if (first.startsWith('_') && !isValidDatabaseName(first)) return 'server_admin';
  if (segments.length === 1 && (method === 'PUT' || method === 'DELETE')) return 'server_admin';
  return 'database';
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
  }
  if (names.length === 1 && first === '_membership') return { GET: handleMembership };
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

  let idBytes = second.bytes;
  let rest = segments.slice(2);
  if ((second.text === '_design' || second.text === '_local') && rest.length > 0) {
    idBytes = prefixedId(second.text, rest[0]!);
    rest = rest.slice(1);
  }
  if (second.text === '_design' && rest[0]?.text.startsWith('_')) {
    throw errors.notImplemented(`Divan does not implement design document ${rest[0].text} yet.`);
  }
  if (rest.length > 0) throw errors.notImplemented('Divan does not implement attachments yet.');
  return documentTable(scope, db, idBytes);
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
