/**
 * Server-level routes: `GET /`, `/_up`, `/_all_dbs`, `/_uuids`, `/_active_tasks`,
 * `/_node/_local/_system` and `/_node/_local/_raft`. The welcome body follows CouchDB 3.x's
 * members; `vendor` names Divan.
 */
import { randomBytes } from 'node:crypto';
import { compareCodePoints } from '../../document/collate.js';
import { decodeMember } from '../../document/json.js';
import { systemFacts } from '../../ops/stats.js';
import { errors } from '../../util/couch-error.js';
import type { ActiveTask, FaultSettings } from '../backend.js';
import type { RequestScope } from '../context.js';

/** The CouchDB release whose API Divan follows, reported as `version` by `GET /`. */
export const COUCHDB_API_VERSION = '3.4.2';
const UUID_BYTES = 16;

/** Returns a random uuid as 32 lowercase hex digits, CouchDB's form. */
export function newUuid(): string {
  return randomBytes(UUID_BYTES).toString('hex');
}

export function handleWelcome(scope: RequestScope): void {
  const identity = scope.backend.server();
  scope.sendJson(200, {
    couchdb: 'Welcome',
    version: COUCHDB_API_VERSION,
    uuid: identity.uuid,
    features: [],
    vendor: { name: 'Divan', version: scope.server.version },
  });
}

export function handleUp(scope: RequestScope): void {
  scope.sendJson(200, { status: 'ok', seeds: {} });
}

export async function handleAllDbs(scope: RequestScope): Promise<void> {
  const query = scope.query;
  const descending = query.boolean('descending', false);
  const limit = query.integer('limit', Number.MAX_SAFE_INTEGER);
  const skip = query.integer('skip', 0);
  const inclusiveEnd = query.boolean('inclusive_end', true);
  const startKey = query.json('startkey', 'start_key')?.value;
  const endKey = query.json('endkey', 'end_key')?.value;

  let names = await scope.backend.listDatabases(scope.consistency());
  if (descending) names = names.slice().reverse();
  const before = (a: string, b: string) =>
    descending ? compareCodePoints(a, b) > 0 : compareCodePoints(a, b) < 0;
  names = names.filter((name) => {
    if (typeof startKey === 'string' && before(name, startKey)) return false;
    if (typeof endKey === 'string') {
      if (before(endKey, name)) return false;
      if (!inclusiveEnd && name === endKey) return false;
    }
    return true;
  });
  scope.sendJson(200, names.slice(skip, skip + limit));
}

export function handleUuids(scope: RequestScope): void {
  const count = scope.query.integer('count', 1);
  if (count > scope.limits.maxUuidCount) {
    throw errors.badRequest(
      `count parameter too large: the maximum is ${scope.limits.maxUuidCount}`,
    );
  }
  const uuids: string[] = [];
  for (let i = 0; i < count; i++) uuids.push(newUuid());
  scope.sendJson(
    200,
    { uuids },
    { 'cache-control': 'must-revalidate, no-cache', pragma: 'no-cache' },
  );
}

/** CouchDB's fields of a `database_compaction` task; `pid` is a string, as Fauxton needs. */
function activeTaskJson(task: ActiveTask): Readonly<Record<string, unknown>> {
  if (task.type === 'raft_snapshot') return task.json;
  const progress =
    task.totalChanges === 0 ? 0 : Math.floor((task.changesDone / task.totalChanges) * 100);
  return {
    pid: `<0.${task.taskId}.0>`,
    node: task.node,
    type: task.type,
    database: task.database,
    phase: task.phase,
    progress: Math.min(100, progress),
    changes_done: task.changesDone,
    total_changes: task.totalChanges,
    ...(task.retry ? { retry: true } : {}),
    process_status: 'running',
    started_on: task.startedOn,
    updated_on: task.updatedOn,
  };
}

/** `GET /_active_tasks`: the running compactions and snapshot transfers, by database and start time. */
export async function handleActiveTasks(scope: RequestScope): Promise<void> {
  const tasks = scope.backend.activeTasks === undefined ? [] : await scope.backend.activeTasks();
  const sorted = [...tasks].sort(
    (a, b) => compareCodePoints(a.database, b.database) || a.startedOn - b.startedOn,
  );
  scope.sendJson(200, sorted.map(activeTaskJson));
}

export async function handleSystem(scope: RequestScope): Promise<void> {
  const stats = await scope.backend.nodeStats();
  scope.sendJson(200, {
    ...systemFacts(),
    open_database_files: stats.openDatabaseFiles,
    raft_groups: stats.raftGroups,
    divan: stats.details,
  });
}

/** `GET`/`PUT /_node/_local/_faults`: test-only file fault control; 404 unless enabled. */
export async function handleFaults(scope: RequestScope): Promise<void> {
  let change: FaultSettings | null = null;
  if (scope.method === 'PUT') {
    const body = scope.jsonObjectBody();
    const fields: Record<string, unknown> = {};
    for (const member of body.members) fields[member.key] = decodeMember(body, member);
    const delay = fields.fsync_delay_ms;
    const fail = fields.fsync_fail;
    if (delay !== undefined && (typeof delay !== 'number' || !(delay >= 0))) {
      throw errors.badRequest('fsync_delay_ms must be a non-negative number of milliseconds.');
    }
    if (fail !== undefined && typeof fail !== 'boolean') {
      throw errors.badRequest('fsync_fail must be true or false.');
    }
    change = {
      ...(delay === undefined ? {} : { fsync_delay_ms: delay as number }),
      ...(fail === undefined ? {} : { fsync_fail: fail as boolean }),
    };
  }
  const settings = await scope.backend.faults(change);
  if (settings === null) throw errors.notFound('missing');
  scope.sendJson(200, settings);
}

export async function handleNodeRaft(scope: RequestScope): Promise<void> {
  scope.sendJson(200, await scope.backend.nodeRaftStatus());
}
