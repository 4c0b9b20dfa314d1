/**
 * Node operations routes under `/_node/{node}`: `_prometheus` (the exposition text),
 * `_stats[/group/...]` and `_system` in CouchDB's shapes, `_config[/section[/key]]` (read
 * only), and `/_node/{node}` itself (`{"name": ...}`).
 *
 * `{node}` is `_local` or this node's name. The name of another member is forwarded to that
 * member's HTTP address with the caller's credentials, as CouchDB serves any node's routes from
 * every node. These routes need a backend with an `OpsSource`; without one `nodeRoute` returns
 * null and the router answers as before.
 */
import type { OpsSource } from '../../ops/source.js';
import { nodeStats, statsAt, systemFacts } from '../../ops/stats.js';
import { CouchError, errors } from '../../util/couch-error.js';
import { httpRequest as request } from '../../util/http-client.js';
import type { RequestScope } from '../context.js';
import { JSON_CONTENT_TYPE } from '../reply.js';

type Handler = (scope: RequestScope) => void | Promise<void>;
/** Handlers by method, as the router dispatches them (`GET` also serves `HEAD`). */
export type MethodTable = Readonly<Partial<Record<string, Handler>>>;

const LOCAL_NODE = '_local';
/** How long a request forwarded to another member may take. */
const FORWARD_TIMEOUT_MS = 5_000;
const FORWARDED_HEADERS = ['authorization', 'cookie', 'accept'] as const;
const CONFIG_READ_ONLY =
  "Divan's configuration is set by its start-up flags and cannot be changed at run time.";

/**
 * Returns the handlers of `/_node/{node}/...` routes this module serves, or null for paths it
 * does not serve (the router's own `_node` routes then apply).
 */
export function nodeRoute(scope: RequestScope, names: readonly string[]): MethodTable | null {
  const ops = scope.backend.ops;
  const node = names[1];
  if (ops === undefined || names[0] !== '_node' || node === undefined) return null;
  const route = names[2];
  if (!isOpsRoute(route, names.length)) return null;
  if (node !== LOCAL_NODE && node !== ops.nodeName) {
    const member = ops.members().find((candidate) => candidate.name === node);
    if (member === undefined) return null;
    if (member.http === '') {
      throw errors.unavailable(`the HTTP address of ${node} is not recorded yet; try again`);
    }
    return { GET: () => forward(scope, member.http) };
  }
  switch (route) {
    case undefined:
      return { GET: () => scope.sendJson(200, { name: ops.nodeName }) };
    case '_prometheus':
      return { GET: () => sendPrometheus(scope, ops) };
    case '_stats':
      return { GET: () => sendStats(scope, ops, names.slice(3)) };
    case '_system':
      return { GET: () => sendSystem(scope) };
    case '_config':
      return configTable(scope, ops, names.slice(3));
    default:
      return null;
  }
}

function isOpsRoute(route: string | undefined, length: number): boolean {
  if (route === undefined) return length === 2;
  if (route === '_prometheus' || route === '_system') return length === 3;
  if (route === '_config') return length <= 5;
  return route === '_stats';
}

async function sendPrometheus(scope: RequestScope, ops: OpsSource): Promise<void> {
  const text = await ops.metrics.exposition();
  scope.reply
    .code(200)
    .header('content-type', ops.metrics.contentType)
    .header('cache-control', 'must-revalidate')
    .send(text);
}

async function sendStats(scope: RequestScope, ops: OpsSource, path: string[]): Promise<void> {
  const tree = await nodeStats(ops.metrics);
  scope.sendJson(200, statsAt(tree, path));
}

async function sendSystem(scope: RequestScope): Promise<void> {
  const stats = await scope.backend.nodeStats();
  scope.sendJson(200, {
    ...systemFacts(),
    open_database_files: stats.openDatabaseFiles,
    raft_groups: stats.raftGroups,
    divan: stats.details,
  });
}

function configTable(scope: RequestScope, ops: OpsSource, path: string[]): MethodTable {
  const readOnly = () => Promise.reject(errors.forbidden(CONFIG_READ_ONLY));
  const [section, key] = path;
  const read = () => {
    const sections = ops.config();
    if (section === undefined) {
      scope.sendJson(200, sections);
      return;
    }
    const values = Object.hasOwn(sections, section) ? sections[section]! : {};
    if (key === undefined) {
      scope.sendJson(200, values);
      return;
    }
    if (!Object.hasOwn(values, key)) throw errors.notFound('unknown_config_value');
    scope.sendJson(200, values[key]);
  };
  if (key === undefined) return { GET: read };
  return { GET: read, PUT: readOnly, DELETE: readOnly };
}

/** Sends the same GET to another member and relays its status, type and body. */
async function forward(scope: RequestScope, address: string): Promise<void> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_HEADERS) {
    const value = scope.header(name);
    if (value !== undefined) headers[name] = value;
  }
  let response: Awaited<ReturnType<typeof request>>;
  try {
    response = await request(`http://${address}${scope.target.rawPath}`, {
      method: 'GET',
      headers,
      headersTimeout: FORWARD_TIMEOUT_MS,
      bodyTimeout: FORWARD_TIMEOUT_MS,
    });
  } catch (error) {
    throw new CouchError(
      503,
      'nodedown',
      `the request to the node at ${address} failed: ${(error as Error).message}`,
    );
  }
  const body = Buffer.from(await response.body.arrayBuffer());
  const type = response.headers['content-type'];
  scope.reply
    .code(response.statusCode)
    .header('content-type', typeof type === 'string' ? type : JSON_CONTENT_TYPE)
    .header('cache-control', 'must-revalidate')
    .send(body);
}
