/**
 * The node as the HTTP layer sees it (`HttpBackend`): database lifecycle through the `_dbs`
 * group, reads from engine snapshots after a ReadIndex barrier (or at once for stale reads),
 * writes as commands proposed to the database's group, and the Raft status routes.
 *
 * Creating a database is a write to `_dbs` naming a fresh uuid and this node as the first
 * candidate; it returns once this node has applied the write, created the database's file and
 * seen its group elect a leader (or the election deadline passed), so every node serves the
 * database as soon as `PUT /db` returns: a node that has not applied the `_dbs` write yet
 * finds the database after a linearizable read of `_dbs`, never a 404.
 */
import { randomBytes } from 'node:crypto';
import {
  type Command,
  documentsCommand,
  type EngineSnapshot,
  type EntryOutcome,
  purgeCommand,
} from '../engine/index.js';
import type {
  ActiveTask,
  ClusterNode,
  Consistency,
  DatabaseSnapshot,
  FaultSettings,
  HttpBackend,
  Membership,
  NodeRaftStatus,
  NodeStats,
  PurgeRequest,
  PurgeResult,
  RaftGroupStatus,
  Seq,
  ServerIdentity,
  WriteAuthorization,
  WriteRequest,
  WriteResult,
} from '../http/backend.js';
import { NodeOps } from '../ops/node-ops.js';
import { countingSnapshot } from '../ops/read-counter.js';
import { NO_NODE } from '../raft/index.js';
import { CouchError, errors } from '../util/couch-error.js';
import { catalogBody, catalogDocId, type DatabaseEntry, nodeBody, nodeDocId } from './catalog.js';
import { DBS_GROUP, type DivanNode, type OpenGroup } from './node.js';

/** How long `PUT /db` waits for the new group's first leader before it returns anyway. */
const CREATE_LEADER_WAIT_MS = 5_000;
const UUID_BYTES = 16;
/** Attempts to delete a database whose `_dbs` document keeps changing underneath. */
const DELETE_ATTEMPTS = 5;
/** How long `_active_tasks` waits for each other node's list. */
const TASKS_TIMEOUT_MS = 1_000;

export class NodeBackend implements HttpBackend {
  readonly ops: NodeOps;

  constructor(readonly node: DivanNode) {
    this.ops = new NodeOps(node);
  }

  server(): ServerIdentity {
    return { uuid: this.node.clusterUuid };
  }

  async listDatabases(consistency: Consistency): Promise<string[]> {
    if (consistency === 'linearizable') await this.#barrier(this.node.dbs);
    return this.node.catalog.names();
  }

  async createDatabase(name: string): Promise<'created' | 'exists'> {
    const uuid = randomBytes(UUID_BYTES).toString('hex');
    const outcome = await this.node.propose(
      DBS_GROUP,
      documentsCommand(this.node.nextRequestId(), {
        newEdits: true,
        docs: [
          {
            id: catalogDocId(name),
            revisions: { start: 0, ids: [] },
            deleted: false,
            attachments: null,
            body: catalogBody(
              uuid,
              this.node.config.name,
              this.node.dbs.group.status().membership.voters,
            ),
          },
        ],
      }),
      this.#deadline(),
    );
    const result = firstResult(outcome);
    if (!result.ok) {
      if (result.error === 'conflict') return 'exists';
      throw new CouchError(400, result.error, result.reason);
    }
    await this.#barrier(this.node.dbs);
    const open = await this.node.groupOf(name);
    await open.group.waitForLeader(Date.now() + CREATE_LEADER_WAIT_MS);
    return 'created';
  }

  async deleteDatabase(name: string): Promise<'deleted' | 'missing'> {
    for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
      await this.#barrier(this.node.dbs);
      const entry = this.node.catalog.get(name);
      if (entry === undefined) return 'missing';
      const rev = this.#catalogRev(catalogDocId(name));
      if (rev === null) return 'missing';
      const result = await this.#deleteCatalogDocument(
        catalogDocId(name),
        rev,
        JSON.stringify({ uuid: entry.uuid }),
      );
      if (result.ok) {
        await this.#barrier(this.node.dbs);
        return 'deleted';
      }
      if (result.error !== 'conflict') throw new CouchError(400, result.error, result.reason);
    }
    throw errors.unavailable('the database kept changing while it was being deleted; try again');
  }

  async snapshot(db: string, consistency: Consistency): Promise<DatabaseSnapshot> {
    const open = await this.#open(db, consistency);
    if (consistency === 'linearizable') await this.#databaseBarrier(db, open);
    return countingSnapshot(open.file.snapshot(), (count) =>
      this.node.metrics.databaseReads.inc(count),
    );
  }

  async write(
    db: string,
    request: WriteRequest,
    authorization?: WriteAuthorization,
  ): Promise<WriteResult[]> {
    if (request.docs.length === 0) return [];
    const open = await this.#open(db, 'linearizable');
    const outcome = await this.node.propose(
      open.id,
      documentsCommand(this.node.nextRequestId(), request),
      this.#deadline(),
      authorization,
    );
    this.node.metrics.databaseWrites.inc();
    if (outcome.kind === 'documents') {
      this.node.metrics.documentWrites.inc(outcome.results.filter((result) => result.ok).length);
      return [...outcome.results];
    }
    throw outcomeError(outcome);
  }

  async setRevsLimit(db: string, limit: number, authorization?: WriteAuthorization): Promise<void> {
    const requestId = this.node.nextRequestId();
    await this.#proposeSetting(db, { kind: 'revs_limit', requestId, limit }, authorization);
  }

  async setSecurity(
    db: string,
    security: Buffer,
    authorization?: WriteAuthorization,
  ): Promise<void> {
    const requestId = this.node.nextRequestId();
    await this.#proposeSetting(db, { kind: 'security', requestId, security }, authorization);
  }

  async purge(db: string, request: PurgeRequest): Promise<PurgeResult[]> {
    if (request.docs.length === 0) return [];
    const open = await this.#open(db, 'linearizable');
    const outcome = await this.node.propose(
      open.id,
      purgeCommand(this.node.nextRequestId(), { docs: request.docs }),
      this.#deadline(),
    );
    if (outcome.kind === 'purge') return [...outcome.results];
    throw outcomeError(outcome);
  }

  async setPurgedInfosLimit(db: string, limit: number): Promise<void> {
    const requestId = this.node.nextRequestId();
    await this.#proposeSetting(db, { kind: 'purged_infos_limit', requestId, limit });
  }

  /**
   * Proposes a `compact` command: every replica starts compacting its own file when it applies
   * the command, so a node that is down now compacts when it catches up.
   */
  async compact(db: string): Promise<void> {
    await this.#proposeSetting(db, { kind: 'compact', requestId: this.node.nextRequestId() });
  }

  async activeTasks(): Promise<ActiveTask[]> {
    return this.node.clusterTasks(TASKS_TIMEOUT_MS);
  }

  async waitForChange(
    db: string,
    since: Seq,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    const open = await this.#open(db, 'stale');
    const snapshot: EngineSnapshot = open.file.snapshot();
    let target: number;
    try {
      target = snapshot.parseSeq(since);
    } finally {
      snapshot.close();
    }
    if (open.file.updateSeq > target) return true;
    return new Promise<boolean>((resolve) => {
      const finish = (changed: boolean) => {
        clearTimeout(timer);
        unsubscribe();
        signal.removeEventListener('abort', onAbort);
        resolve(changed);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      const unsubscribe = open.file.onUpdate((updateSeq) => {
        if (updateSeq > target) finish(true);
      });
      signal.addEventListener('abort', onAbort);
    });
  }

  async transferLeader(db: string, to: string): Promise<string> {
    const open = await this.#open(db, 'linearizable');
    const reply = await this.node.transferLeader(open.id, to, this.#deadline());
    if (reply.status === 'ok') return reply.leader;
    if (reply.status === 'rejected') throw new CouchError(reply.code, reply.error, reply.reason);
    throw errors.unavailable('the leader could not be reached; try again');
  }

  async raftStatus(db: string): Promise<RaftGroupStatus> {
    return this.#groupStatus(await this.#open(db, 'stale'));
  }

  async nodeRaftStatus(): Promise<NodeRaftStatus> {
    const groups = [...this.node.openGroups.values()]
      .filter((open) => open.id !== DBS_GROUP)
      .map((open) => ({ db: open.name, role: open.group.status().role }));
    return { ...this.#groupStatus(this.node.dbs), groups };
  }

  async nodeStats(): Promise<NodeStats> {
    return {
      openDatabaseFiles: this.node.openGroups.size,
      raftGroups: this.node.openGroups.size,
      details: {
        raft_messages_sent: { ...this.node.messagesSent },
        transport: this.node.transport.stats(),
        known_databases: this.node.catalog.size,
        forward_retries: this.node.forwardRetries,
      },
    };
  }

  async membership(): Promise<Membership> {
    await this.#barrier(this.node.dbs);
    const dbsMembership = this.node.dbs.group.status().membership;
    const all = new Set([
      ...this.node.memberNames,
      ...dbsMembership.voters,
      ...dbsMembership.learners,
    ]);
    let voters = new Set(dbsMembership.voters);
    for (const open of this.node.openGroups.values()) {
      const groupVoters = open.group.status().membership.voters;
      voters = new Set([...voters].filter((node) => groupVoters.includes(node)));
    }
    return { all_nodes: [...all].sort(), cluster_nodes: [...voters].sort() };
  }

  async listNodes(): Promise<ClusterNode[]> {
    await this.#barrier(this.node.dbs);
    return [...this.node.catalog.nodes.values()].map((node) => ({ ...node }));
  }

  async addNode(node: ClusterNode): Promise<'added' | 'present'> {
    for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
      await this.#barrier(this.node.dbs);
      const current = this.node.catalog.nodes.get(node.name);
      if (
        current !== undefined &&
        current.peer === node.peer &&
        (node.http === '' || current.http === node.http)
      ) {
        return 'present';
      }
      const rev = this.#catalogRev(nodeDocId(node.name));
      const outcome = await this.node.propose(
        DBS_GROUP,
        documentsCommand(this.node.nextRequestId(), {
          newEdits: true,
          docs: [
            {
              id: nodeDocId(node.name),
              revisions: rev === null ? { start: 0, ids: [] } : { start: rev.pos, ids: [rev.id] },
              deleted: false,
              attachments: null,
              body: nodeBody(node.peer, node.http === '' ? (current?.http ?? '') : node.http),
            },
          ],
        }),
        this.#deadline(),
      );
      const result = firstResult(outcome);
      if (result.ok) {
        this.node.log.info({ member: node.name, peer: node.peer }, 'member node added');
        return 'added';
      }
      if (result.error !== 'conflict') throw new CouchError(400, result.error, result.reason);
    }
    throw errors.unavailable('the member list kept changing; try again');
  }

  async removeNode(name: string): Promise<'removed' | 'missing'> {
    for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
      await this.#barrier(this.node.dbs);
      if (!this.node.catalog.nodes.has(name)) return 'missing';
      if (this.node.catalog.nodes.size === 1) {
        throw errors.badRequest(`${name} is the last member; a cluster needs at least one.`);
      }
      const rev = this.#catalogRev(nodeDocId(name));
      if (rev === null) return 'missing';
      const result = await this.#deleteCatalogDocument(nodeDocId(name), rev, '{}');
      if (result.ok) {
        this.node.log.info({ member: name }, 'member node removed');
        return 'removed';
      }
      if (result.error !== 'conflict') throw new CouchError(400, result.error, result.reason);
    }
    throw errors.unavailable('the member list kept changing; try again');
  }

  async faults(change: FaultSettings | null): Promise<FaultSettings | null> {
    if (this.node.config.faultControl !== true) return null;
    const { fsyncDelay, fsyncFailure } = this.node.faults;
    if (change !== null) {
      if (change.fsync_delay_ms !== undefined && fsyncDelay !== undefined) {
        fsyncDelay.delayMs = change.fsync_delay_ms;
      }
      if (change.fsync_fail !== undefined && fsyncFailure !== undefined) {
        fsyncFailure.failAfterSyncs = change.fsync_fail ? fsyncFailure.syncCount : null;
      }
      this.node.log.warn({ faults: change }, 'file faults changed');
    }
    return {
      ...(fsyncDelay === undefined ? {} : { fsync_delay_ms: fsyncDelay.delayMs }),
      ...(fsyncFailure === undefined ? {} : { fsync_fail: fsyncFailure.failAfterSyncs !== null }),
    };
  }

  #groupStatus(open: OpenGroup): RaftGroupStatus {
    const status = open.group.status();
    const progress: Record<string, { match_index: number; next_index: number }> = {};
    for (const [peer, follower] of status.progress) {
      if (peer === this.node.config.name) continue;
      progress[peer] = { match_index: follower.match, next_index: follower.next };
    }
    return {
      node: this.node.config.name,
      role: status.role,
      term: status.term,
      leader: status.leader === NO_NODE ? null : status.leader,
      commit_index: status.commit,
      applied_index: open.group.appliedIndex,
      first_index: status.firstIndex,
      last_index: status.lastIndex,
      members: [...status.membership.voters],
      hash_chain: open.group.hashChain(),
      snapshots_sent: this.node.snapshots.sent.get(open.id) ?? 0,
      snapshots_received: open.group.snapshotsReceived,
      ...(status.role === 'leader' ? { progress } : {}),
    };
  }

  /** The open group of `db`; a linearizable miss looks again after a `_dbs` read barrier. */
  async #open(db: string, consistency: Consistency): Promise<OpenGroup> {
    if (this.node.catalog.get(db) === undefined && consistency === 'linearizable') {
      await this.#barrier(this.node.dbs);
    }
    return this.node.groupOf(db);
  }

  /** Proposes a command that changes a database setting and expects an `ok` outcome. */
  async #proposeSetting(
    db: string,
    command: Command,
    authorization?: WriteAuthorization,
  ): Promise<void> {
    const open = await this.#open(db, 'linearizable');
    const outcome = await this.node.propose(open.id, command, this.#deadline(), authorization);
    if (outcome.kind !== 'ok') throw outcomeError(outcome);
  }

  /** Deletes the `_dbs` document `id` at revision `rev`, leaving `body` in its tombstone. */
  async #deleteCatalogDocument(
    id: string,
    rev: { pos: number; id: string },
    body: string,
  ): Promise<WriteResult> {
    const outcome = await this.node.propose(
      DBS_GROUP,
      documentsCommand(this.node.nextRequestId(), {
        newEdits: true,
        docs: [
          {
            id,
            revisions: { start: rev.pos, ids: [rev.id] },
            deleted: true,
            attachments: null,
            body: Buffer.from(body),
          },
        ],
      }),
      this.#deadline(),
    );
    return firstResult(outcome);
  }

  async #barrier(open: OpenGroup): Promise<void> {
    await open.group.readBarrier(this.#deadline());
  }

  /**
   * Waits for a read barrier on the group of database `db`. The barrier fails when the database
   * was deleted after this node last applied `_dbs`, because no member is left to confirm the
   * read. The catalog is then read again after a `_dbs` barrier, and a deleted database gets 404.
   */
  async #databaseBarrier(db: string, open: OpenGroup): Promise<void> {
    try {
      await this.#barrier(open);
    } catch (error) {
      await this.#barrier(this.node.dbs);
      if (this.node.catalog.get(db) === undefined) throw errors.dbNotFound();
      throw error;
    }
  }

  /** The winning revision of the `_dbs` document `id`, or null when it is missing or deleted. */
  #catalogRev(id: string): { pos: number; id: string } | null {
    const snapshot = this.node.dbs.file.snapshot();
    try {
      const record = snapshot.document(id);
      if (record === null || record.deleted) return null;
      return record.winner;
    } finally {
      snapshot.close();
    }
  }

  #deadline(): number {
    return Date.now() + this.node.config.writeTimeoutMs;
  }
}

function firstResult(outcome: EntryOutcome): WriteResult {
  if (outcome.kind !== 'documents' || outcome.results.length !== 1) throw outcomeError(outcome);
  return outcome.results[0]!;
}

function outcomeError(outcome: EntryOutcome): CouchError {
  if (outcome.kind === 'error') return new CouchError(400, outcome.error, outcome.reason);
  return errors.badRequest(`unexpected outcome of kind ${outcome.kind}`);
}

export type { DatabaseEntry };
