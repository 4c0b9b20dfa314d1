/**
 * Cluster membership routes, in CouchDB's spirit: `GET /_membership`, and Divan's own
 * `GET /_node/_local/_nodes` (members with their addresses), `PUT /_node/_local/_nodes/{name}`
 * with `{"peer": "HOST:PORT", "http": "HOST:PORT"}` to add a member (idempotent), and
 * `DELETE /_node/_local/_nodes/{name}` to remove one.
 */
import { decodeMember } from '../../document/json.js';
import { errors } from '../../util/couch-error.js';
import type { RequestScope } from '../context.js';

const NODE_NAME = /^[a-z][a-z0-9_-]{0,63}$/;
const ADDRESS = /^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/;

export async function handleMembership(scope: RequestScope): Promise<void> {
  scope.sendJson(200, await scope.backend.membership());
}

export async function handleListNodes(scope: RequestScope): Promise<void> {
  scope.sendJson(200, { nodes: await scope.backend.listNodes() });
}

export async function handlePutNode(scope: RequestScope, name: string): Promise<void> {
  checkName(name);
  const body = scope.jsonObjectBody();
  const fields: Record<string, unknown> = {};
  for (const member of body.members) fields[member.key] = decodeMember(body, member);
  const { peer, http } = fields;
  if (typeof peer !== 'string' || !ADDRESS.test(peer)) {
    throw errors.badRequest('The body must give the peer address as "peer": "HOST:PORT".');
  }
  if (http !== undefined && (typeof http !== 'string' || !ADDRESS.test(http))) {
    throw errors.badRequest('"http" must be an HTTP address as "HOST:PORT".');
  }
  const outcome = await scope.backend.addNode({
    name,
    peer,
    http: (http as string | undefined) ?? '',
  });
  scope.sendJson(outcome === 'added' ? 201 : 200, { ok: true });
}

export async function handleDeleteNode(scope: RequestScope, name: string): Promise<void> {
  checkName(name);
  const outcome = await scope.backend.removeNode(name);
  if (outcome === 'missing') throw errors.notFound(`${name} is not a member of this cluster.`);
  scope.sendJson(200, { ok: true });
}

function checkName(name: string): void {
  if (!NODE_NAME.test(name)) {
    throw errors.badRequest(
      `Invalid node name '${name}': use 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter.`,
    );
  }
}
