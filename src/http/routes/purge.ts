/**
 * Purge routes, as CouchDB 3.x serves them:
 *
 * - `POST /{db}/_purge` with `{"id": ["rev", ...], ...}` purges those leaf revisions and
 *   answers 201 `{"purge_seq": null, "purged": {"id": [revisions purged], ...}}`, ids in
 *   request order (CouchDB's clustered reply has a null `purge_seq`). At most
 *   `maxPurgeDocs` documents and `maxPurgeRevs` revisions per request (400 past them); each
 *   document's purge gets a fresh uuid here, before it is proposed.
 * - `GET /{db}/_purged_infos_limit` and `PUT` of a positive integer.
 * - `GET /{db}/_purged_infos`: `{"purged_infos": [{"id", "revs"}, ...]}`, oldest first.
 */
import { decodeMember, kindAt } from '../../document/json.js';
import { parseRev } from '../../document/rev.js';
import { errors } from '../../util/couch-error.js';
import type { PurgeRequest } from '../backend.js';
import type { RequestScope } from '../context.js';
import { requireBackendMethod, withSnapshot } from './database.js';
import { newUuid } from './server.js';

function parsePurgeRequest(scope: RequestScope): PurgeRequest {
  const body = scope.jsonObjectBody();
  if (body.members.length > scope.limits.maxPurgeDocs) {
    throw errors.badRequest('Exceeded maximum number of documents.');
  }
  let revCount = 0;
  const docs = body.members.map((member) => {
    if (kindAt(body.bytes, member.valueStart) !== 'array') {
      throw errors.badRequest(`The revisions of ${member.key} must be a list of revisions.`);
    }
    const revs = decodeMember(body, member) as unknown[];
    for (const rev of revs) parseRev(rev);
    revCount += revs.length;
    return { id: member.key, revs: revs as string[], uuid: newUuid() };
  });
  if (revCount > scope.limits.maxPurgeRevs) {
    throw errors.badRequest('Exceeded maximum number of revisions.');
  }
  return { docs };
}

export async function handlePurge(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const purge = requireBackendMethod(scope.backend.purge, '_purge');
  const request = parsePurgeRequest(scope);
  const results = request.docs.length === 0 ? [] : await purge.call(scope.backend, db, request);
  // Built as text so that ids keep request order (JSON.stringify moves integer-like keys).
  const purged = results.map(
    (result) => `${JSON.stringify(result.id)}:${JSON.stringify(result.purged)}`,
  );
  scope.sendJsonBytes(201, `{"purge_seq":null,"purged":{${purged.join(',')}}}`);
}

export async function handleGetPurgedInfosLimit(scope: RequestScope, db: string): Promise<void> {
  const limit = await withSnapshot(scope, db, (snapshot) => snapshot.purgedInfosLimit());
  scope.sendJson(200, limit);
}

export async function handlePutPurgedInfosLimit(scope: RequestScope, db: string): Promise<void> {
  const scanned = scope.jsonBody();
  const text = scanned.bytes.toString('latin1', scanned.start, scanned.end);
  const limit = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw errors.badRequest('`purged_infos_limit` must be positive integer');
  }
  const setLimit = requireBackendMethod(scope.backend.setPurgedInfosLimit, '_purged_infos_limit');
  await setLimit.call(scope.backend, db, limit);
  scope.sendJson(200, { ok: true });
}

export async function handleGetPurgedInfos(scope: RequestScope, db: string): Promise<void> {
  const infos = await withSnapshot(scope, db, (snapshot) => snapshot.purgedInfos());
  scope.sendJson(200, { purged_infos: infos });
}
