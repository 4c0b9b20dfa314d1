/**
 * A test double of the node over the engine: `EngineBackend` implements the HTTP layer's
 * `HttpBackend` with one `LocalDatabase` per database in a directory, with no Raft. It is the
 * thin adapter the cluster is between the HTTP layer and the engine: snapshots are the
 * engine's own, writes, purges and `_compact` are commands, `_changes` feeds wait on update
 * events, and `_active_tasks` lists the files' running compactions.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { unixSeconds } from '../../src/engine/compaction.js';
import type { CreateOptions } from '../../src/engine/database-file.js';
import { LocalDatabase, type LocalDatabaseOptions } from '../../src/engine/local-database.js';
import type {
  ActiveTask,
  Consistency,
  DatabaseSnapshot,
  HttpBackend,
  NodeRaftStatus,
  NodeStats,
  PurgeRequest,
  PurgeResult,
  RaftGroupStatus,
  Seq,
  ServerIdentity,
  WriteRequest,
  WriteResult,
} from '../../src/http/backend.js';
import { errors } from '../../src/util/couch-error.js';

export class EngineBackend implements HttpBackend {
  readonly #databases = new Map<string, LocalDatabase>();
  /** Snapshots opened and not yet closed. */
  openSnapshots = 0;

  constructor(
    private readonly dir: string,
    private readonly options: Omit<CreateOptions, 'name'> & LocalDatabaseOptions = {},
  ) {}

  server(): ServerIdentity {
    return { uuid: '00000000000000000000000000000001' };
  }

  async listDatabases(_consistency: Consistency): Promise<string[]> {
    return [...this.#databases.keys()].sort();
  }

  async createDatabase(name: string): Promise<'created' | 'exists'> {
    if (this.#databases.has(name)) return 'exists';
    const path = join(this.dir, `${encodeURIComponent(name)}.couch`);
    this.#databases.set(name, await LocalDatabase.create(path, { ...this.options, name }));
    return 'created';
  }

  async deleteDatabase(name: string): Promise<'deleted' | 'missing'> {
    const database = this.#databases.get(name);
    if (database === undefined) return 'missing';
    this.#databases.delete(name);
    await database.close();
    await rm(database.file.path);
    return 'deleted';
  }

  async snapshot(db: string, _consistency: Consistency): Promise<DatabaseSnapshot> {
    const snapshot = this.#database(db).file.snapshot();
    this.openSnapshots += 1;
    const close = snapshot.close.bind(snapshot);
    snapshot.close = () => {
      this.openSnapshots -= 1;
      close();
    };
    return snapshot;
  }

  write(db: string, request: WriteRequest): Promise<WriteResult[]> {
    return this.#database(db).write(request);
  }

  async setRevsLimit(db: string, limit: number): Promise<void> {
    await this.#database(db).setRevsLimit(limit);
  }

  async setSecurity(db: string, security: Buffer): Promise<void> {
    await this.#database(db).setSecurity(security);
  }

  async purge(db: string, request: PurgeRequest): Promise<PurgeResult[]> {
    return this.#database(db).purge(request.docs);
  }

  async setPurgedInfosLimit(db: string, limit: number): Promise<void> {
    await this.#database(db).setPurgedInfosLimit(limit);
  }

  /** Starts compacting and resolves once the `compact` command is applied, as a node does. */
  async compact(db: string): Promise<void> {
    await this.#database(db).requestCompaction();
  }

  async activeTasks(): Promise<ActiveTask[]> {
    const tasks: ActiveTask[] = [];
    for (const [name, database] of this.#databases) {
      const progress = database.file.compaction;
      if (progress === null) continue;
      tasks.push({
        type: 'database_compaction',
        taskId: progress.taskId,
        node: 'engine',
        database: name,
        phase: progress.phase,
        retry: progress.round > 1,
        changesDone: progress.changesDone,
        totalChanges: progress.totalChanges,
        startedOn: unixSeconds(progress.startedAt),
        updatedOn: unixSeconds(progress.updatedAt),
      });
    }
    return tasks;
  }

  /** The database of `name`, for tests that look below the HTTP layer. */
  database(name: string): LocalDatabase {
    return this.#database(name);
  }

  waitForChange(db: string, since: Seq, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const database = this.#database(db);
    const after = database.read((snapshot) => snapshot.parseSeq(since));
    return database.waitForChange(after, timeoutMs, signal);
  }

  raftStatus(_db: string): Promise<RaftGroupStatus> {
    return Promise.reject(errors.notImplemented('no Raft group in this test double'));
  }

  nodeRaftStatus(): Promise<NodeRaftStatus> {
    return Promise.reject(errors.notImplemented('no Raft group in this test double'));
  }

  transferLeader(): Promise<string> {
    return Promise.reject(errors.notImplemented('no Raft group in this test double'));
  }

  async membership(): Promise<{ all_nodes: string[]; cluster_nodes: string[] }> {
    return { all_nodes: ['n1'], cluster_nodes: ['n1'] };
  }

  async listNodes(): Promise<{ name: string; peer: string; http: string }[]> {
    return [{ name: 'n1', peer: '127.0.0.1:6984', http: '127.0.0.1:5984' }];
  }

  async addNode(): Promise<'added' | 'present'> {
    return 'present';
  }

  async removeNode(): Promise<'removed' | 'missing'> {
    return 'missing';
  }

  async faults(): Promise<null> {
    return null;
  }

  async nodeStats(): Promise<NodeStats> {
    return { openDatabaseFiles: this.#databases.size, raftGroups: 0, details: {} };
  }

  async close(): Promise<void> {
    for (const database of this.#databases.values()) await database.close();
    this.#databases.clear();
  }

  #database(name: string): LocalDatabase {
    const database = this.#databases.get(name);
    if (database === undefined) throw errors.dbNotFound();
    return database;
  }
}
