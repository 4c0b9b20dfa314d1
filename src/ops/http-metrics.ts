/**
 * HTTP request metrics: `installRequestMetrics` adds fastify hooks that count every finished
 * request by method, status and route kind, time it, and track the clients reading a
 * `_changes` feed. `routeKind` maps a request target to one of a fixed set of kinds, so no
 * metric is ever labelled by database or document.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NodeMetrics, RouteKind } from './metrics.js';

const MS_PER_SECOND = 1000;

/** Databases whose names start with `_` (everything else under `/_...` is a server route). */
const SYSTEM_DATABASES: ReadonlySet<string> = new Set([
  '_users',
  '_replicator',
  '_global_changes',
  '_dbs',
]);

const DATABASE_ROUTE_KINDS: Readonly<Record<string, RouteKind>> = {
  _bulk_docs: 'bulk_docs',
  _bulk_get: 'bulk_get',
  _all_docs: 'all_docs',
  _changes: 'changes',
  _find: 'find',
  _explain: 'find',
  _index: 'find',
};

const SERVER_ROUTE_KINDS: Readonly<Record<string, RouteKind>> = {
  _utils: 'utils',
  _session: 'session',
  _divan: 'status',
};

/** Classifies a request target (path and query, as sent) by the route it reaches. */
export function routeKind(target: string): RouteKind {
  const queryStart = target.indexOf('?');
  const path = queryStart === -1 ? target : target.slice(0, queryStart);
  const segments = path.split('/').filter((segment) => segment.length > 0);
  const first = segments[0];
  if (first === undefined) return 'server';
  if (first.startsWith('_') && !SYSTEM_DATABASES.has(first)) {
    if (first === '_node' && segments.at(-1) === '_prometheus') return 'metrics';
    return SERVER_ROUTE_KINDS[first] ?? 'server';
  }
  const second = segments[1];
  if (second === undefined) return 'database';
  const kind = DATABASE_ROUTE_KINDS[second];
  if (kind !== undefined) return kind;
  if (second === '_design' && segments[3] === '_view') return 'view';
  if (second.startsWith('_') && second !== '_design' && second !== '_local') return 'database';
  return 'doc';
}

/** Adds the request metric hooks to `fastify`; call before it listens. */
export function installRequestMetrics(fastify: FastifyInstance, metrics: NodeMetrics): void {
  const kinds = new WeakMap<FastifyRequest, RouteKind>();
  const kindOf = (request: FastifyRequest): RouteKind => {
    let kind = kinds.get(request);
    if (kind === undefined) {
      kind = routeKind(request.originalUrl);
      kinds.set(request, kind);
    }
    return kind;
  };

  fastify.addHook('onRequest', async (request, reply) => {
    if (kindOf(request) !== 'changes') return;
    metrics.changesClients.inc();
    reply.raw.once('close', () => metrics.changesClients.dec());
  });

  fastify.addHook('onResponse', async (request, reply) => {
    metrics.requestFinished(
      request.method,
      reply.statusCode,
      kindOf(request),
      reply.elapsedTime / MS_PER_SECOND,
    );
  });
}
