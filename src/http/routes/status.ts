/**
 * The cluster status routes. `GET /_divan/cluster` (server admin) returns the whole cluster's
 * status as JSON; with `?local=true` it returns this node's own view, which the other nodes
 * fetch. `/_divan/` serves the status page (plain HTML, CSS and JavaScript from
 * `src/ops/status-page`) without authentication, the way CouchDB serves `/_utils/`. The page
 * asks for admin credentials when `/_divan/cluster` returns 401.
 */
import { fileURLToPath } from 'node:url';
import { clusterStatus } from '../../ops/cluster-status.js';
import type { StatusPage } from '../../ops/source.js';
import { sendRedirect, serveStatic } from '../../ops/static-files.js';
import { errors } from '../../util/couch-error.js';
import type { RequestScope } from '../context.js';
import type { PathSegment } from '../request-target.js';
import type { MethodTable } from './metrics.js';

export const STATUS_PREFIX = '_divan';
const STATUS_DATA = 'cluster';
/** Compiled to dist/src/http/routes; the page's files stay in the source tree. */
const PAGE_ROOT = fileURLToPath(new URL('../../../../src/ops/status-page/', import.meta.url));
const INDEX_FILE = 'index.html';
const DEFAULT_PAGE_LIMIT = 50;
const MAX_PAGE_LIMIT = 500;
/** Headers forwarded when this node fetches the other members' views. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie'] as const;
const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'private, must-revalidate',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

/** True for the paths anyone may read: the status page's files and Fauxton's. */
export function isPublicAsset(segments: readonly PathSegment[]): boolean {
  const first = segments[0]?.text;
  if (first === '_utils') return true;
  return first === STATUS_PREFIX && segments[1]?.text !== STATUS_DATA;
}

/** Returns the handlers of a `/_divan...` path. */
export function statusRoute(scope: RequestScope, names: readonly string[]): MethodTable {
  if (names.length === 2 && names[1] === STATUS_DATA) return { GET: sendClusterStatus };
  if (names.length === 1 && !scope.target.rawPath.endsWith('/')) {
    return { GET: () => sendRedirect(scope.reply, `/${STATUS_PREFIX}/`) };
  }
  const file = names.length === 1 ? [INDEX_FILE] : names.slice(1);
  return { GET: () => sendPageFile(scope, file) };
}

async function sendPageFile(scope: RequestScope, file: readonly string[]): Promise<void> {
  const outcome = await serveStatic(scope.reply, scope.method, file, {
    root: PAGE_ROOT,
    headers: PAGE_HEADERS,
  });
  if (outcome === 'not_found') throw errors.notFound('missing');
}

async function sendClusterStatus(scope: RequestScope): Promise<void> {
  const ops = scope.backend.ops;
  if (ops === undefined) throw errors.notFound('missing');
  const page: StatusPage = {
    skip: scope.query.integer('skip', 0),
    limit: Math.min(scope.query.integer('limit', DEFAULT_PAGE_LIMIT), MAX_PAGE_LIMIT),
  };
  if (scope.query.boolean('local', false)) {
    scope.sendJson(200, ops.localStatus(page));
    return;
  }
  const headers: Record<string, string> = {};
  for (const name of CREDENTIAL_HEADERS) {
    const value = scope.header(name);
    if (value !== undefined) headers[name] = value;
  }
  scope.sendJson(200, await clusterStatus(ops, page, headers));
}
