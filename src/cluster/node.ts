/**
 * A Divan node: one process of a cluster. It hosts one Raft group per database (each over its
 * own database file) plus the `_dbs` system group that records which databases exist, talks to
 * the other nodes over the peer transport, and serves the HTTP API through `NodeBackend`.
 *
 * What it owns:
 * - Groups: opened on demand (a request or a message for a database in the catalog), closed
 *   least recently used past `maxOpenDatabases` when quiet and not leading; never created
 *   because a message arrived. Messages name groups by uuid, so a message for a deleted
 *   incarnation is dropped. Messages for a uuid the catalog does not know yet (a group created
 *   a moment ago elsewhere) wait briefly for the catalog to catch up.
 * - Time: one timer ticks every open group.
 * - Failover: when the connection to a node closes, every group that node led drops it as
 *   leader (`forgetLeader`). The remaining voters campaign in turns a step apart, without
 *   waiting for an election timeout. Groups that wrote nothing lately go after the busy ones,
 *   or when a request needs them (`#deferFailover`). A survivor that rejects a candidate's
 *   pre-vote starts the turns again without that candidate (`#onPreVoteRejected`).
 * - Writes: a command is proposed on the group's leader, forwarded over the peer transport when
 *   the leader is another node; a retry always carries the same request id, so a command is
 *   applied once whatever the retries.
 *
 * Files: `DATA/_dbs.couch` and `DATA/databases/<uuid>.couch`.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import {
  type AppliedEntry,
  type Command,
  DatabaseFile,
  decodeOutcome,
  documentsCommand,
  type EntryOutcome,
  encodeCommand,
  encodeOutcome,
  installSnapshot,
  unixSeconds,
} from '../engine/index.js';
import type { ActiveTask } from '../http/backend.js';
import { NodeMetrics } from '../ops/metrics.js';
import { timedFileSystem } from '../ops/timed-fs.js';
import { SnapshotTransfers } from '../ops/transfers.js';
import {
  EMPTY_MEMBERSHIP,
  type HardState,
  type Membership,
  type Message,
  NO_NODE,
  type NodeId,
  PLANTED_BUGS,
  type PlantedBug,
  type SnapshotMeta,
  stepsToTarget,
} from '../raft/index.js';
import {
  checkDatabaseAccess,
  isServerAdmin,
  isWriteAuthorization,
  parseSecurity,
  type SecurityObject,
  USERS_DATABASE,
  type WriteAuthorization,
} from '../security/access.js';
import { type FaultStack, type FileSystem, fileSystemFromEnv } from '../storage/io.js';
import { CouchError, errors, isCouchError } from '../util/couch-error.js';
import { httpRequest } from '../util/http-client.js';
import type { Logger } from '../util/log.js';
import {
  Catalog,
  catalogBody,
  catalogDocId,
  type DatabaseEntry,
  nodeBody,
  nodeDocId,
} from './catalog.js';
import type { NodeConfig } from './config.js';
import {
  DroppedProposalError,
  type GroupFile,
  NotLeaderError,
  RaftGroup,
  UnknownOutcomeError,
} from './group.js';
import { fetchSnapshot, type SnapshotChunkRequest, SnapshotServer } from './snapshots.js';
import { RequestError, Transport } from './transport/index.js';
import { decodeGroupMessage, encodeGroupMessage, type GroupMessage, isBulk } from './wire.js';

export const DBS_GROUP = '_dbs';

/** An open group with its file. */
export interface OpenGroup {
  readonly id: string;
  readonly name: string;
  /** The group's file; replaced when a snapshot is installed. */
  file: DatabaseFile;
  readonly group: RaftGroup<AppliedEntry>;
  lastUsedAt: number;
}

/** A proposal forwarded to the leader's node. */
interface ProposeRequest {
  readonly kind: 'propose';
  readonly group: string;
  readonly timeoutMs: number;
  readonly command: Uint8Array;
  /** The caller the leader authorizes the write for; absent when the node itself writes. */
  readonly authorization?: WriteAuthorization;
}

/** A leadership transfer forwarded to the leader's node. */
interface TransferRequest {
  readonly kind: 'transfer';
  readonly group: string;
  readonly to: string;
  readonly timeoutMs: number;
}

/** The outcome of a transfer: the leader at the end, or the reason it could not start. */
export type TransferReply =
  | { readonly status: 'ok'; readonly leader: string }
  | { readonly status: 'not_leader'; readonly leader: string }
  | {
      readonly status: 'rejected';
      readonly error: string;
      readonly reason: string;
      readonly code: number;
    }
  | { readonly status: 'unknown_group' };

type ProposeReply =
  | { readonly status: 'ok'; readonly outcome: Uint8Array }
  /** The leader's `_security` does not allow the caller this write. */
  | {
      readonly status: 'denied';
      readonly code: number;
      readonly error: string;
      readonly reason: string;
    }
  | { readonly status: 'not_leader'; readonly leader: string }
  | { readonly status: 'dropped' | 'unknown' | 'unknown_group' };

const BOOT_ID_BYTES = 6;
/**
 * Gap in ms between the campaigns of the remaining voters after a leader's node is lost. They
 * campaign in an order drawn from the group id, so two of them rarely split the vote, which
 * would cost a whole election timeout.
 */
export const FAILOVER_CAMPAIGN_STEP_MS = 250;
/** Random delay added to each voter's turn, in ms. */
const FAILOVER_CAMPAIGN_JITTER_MS = 30;
/** Rounds of campaign turns after a leader's node is lost; a round runs only if no leader is known. */
const FAILOVER_CAMPAIGN_ROUNDS = 3;
/** How long after a leader's node is lost a rejected pre-vote still restarts this node's turns. */
const FAILOVER_WINDOW_MS = 5_000;
/**
 * A group that appended no new entry for this long before its leader's node was lost is idle. Its
 * failover waits, so that with many databases the busy ones elect first, without the election
 * traffic and fsyncs of every idle group competing with them.
 */
export const FAILOVER_IDLE_AFTER_MS = 2_000;
/** An idle group waits this long, plus a part of the spread drawn from its id, to fail over. */
const FAILOVER_IDLE_DELAY_MS = 500;
export const FAILOVER_IDLE_SPREAD_MS = 1_000;
/**
 * A pre-vote that arrived while this node still had a leader counts as a failover campaign this
 * node stopped, if this node notices the loss of that leader's node within this many ms.
 */
const EARLY_REJECTION_MS = 500;
/** Pause between attempts to join a cluster. */
const JOIN_RETRY_MS = 1_000;
/** Every this many ticks, group leaders move their group toward the cluster's members. */
const RECONCILE_TICKS = 5;
/** Groups opened at once when every group must follow a membership change. */
const OPEN_ALL_CONCURRENCY = 8;
/** A reopened group without a leader campaigns after a delay in this range (ms). */
const REOPEN_CAMPAIGN_MIN_MS = 100;
const REOPEN_CAMPAIGN_MAX_MS = 1_000;
/** How long messages for a group the catalog does not know yet are kept. */
const PENDING_MESSAGE_TTL_MS = 3_000;
const MAX_PENDING_MESSAGES = 10_000;
/** Pause between attempts of a write whose leader is unknown or moving. */
const RETRY_PAUSE_MS = 20;
/** How long one wait for a leader lasts before the write loop looks again. */
const LEADER_WAIT_MS = 1_000;
/** A snapshot transfer that has not finished by then is abandoned and asked for again. */
const SNAPSHOT_TIMEOUT_MS = 10 * 60_000;
/** Bytes of the uuid of the `_users` incarnation the bootstrap creates. */
const USERS_UUID_BYTES = 16;
/** The leader caps the wait of a forwarded proposal at this many ms. */
const MAX_FORWARD_TIMEOUT_MS = 60_000;

export class DivanNode {
  readonly config: NodeConfig;
  readonly log: Logger;
  readonly faults: FaultStack;
  readonly catalog = new Catalog();
  readonly bootId = randomBytes(BOOT_ID_BYTES).toString('hex');
  readonly clusterUuid: string;
  readonly metrics = new NodeMetrics();
  readonly snapshotTransfers = new SnapshotTransfers();
  transport!: Transport;
  readonly snapshots: SnapshotServer;

  readonly #fileSystem: FileSystem;
  readonly #groups = new Map<string, OpenGroup>();
  /** Per group id: the failover this node takes part in, from the lost leader's node on. */
  readonly #failovers = new Map<string, Failover>();
  /** Per group, the last pre-vote that arrived while this node still had another leader. */
  readonly #earlyRejections = new Map<string, { candidate: string; atMs: number }>();
  /** Failover campaigns of idle groups, waiting for their delay or for a request to wake them. */
  readonly #deferredFailovers = new Map<string, DeferredFailover>();
  readonly #opening = new Map<string, Promise<OpenGroup>>();
  readonly #pending = new Map<string, { messages: Message[]; firstAt: number }>();
  #pendingCount = 0;
  /** Forwarded proposals sent again after a failed or inconclusive attempt. */
  forwardRetries = 0;
  /** Raft messages handed to the transport, by type (heartbeats included). */
  readonly messagesSent: Record<string, number> = {};
  #requestCounter = 0;
  #ticksSinceReconcile = 0;
  /** Peer addresses learned from the node named by `--join`, until `_dbs` lists the members. */
  readonly #joinPeers = new Map<string, string>();
  /** Every peer address this process has learned, by node name. */
  readonly #knownPeers = new Map<string, string>();
  #bootstrapping = false;
  /** True while this node proposes the creation of `_users`. */
  #creatingUsers = false;
  #tickTimer: NodeJS.Timeout | null = null;
  #reconcileChain: Promise<void> = Promise.resolve();
  #stopped = false;
  #dbs!: OpenGroup;
  readonly #plantedBugs: PlantedBug[];

  constructor(config: NodeConfig, logger: Logger, faults?: FaultStack) {
    this.config = config;
    this.log = logger;
    this.faults = faults ?? fileSystemFromEnv(process.env);
    this.#fileSystem = timedFileSystem(this.faults.fileSystem, (kind, seconds) =>
      this.metrics.fsyncFinished(kind, seconds),
    );
    this.clusterUuid = clusterUuidOf(config.secret);
    this.snapshots = new SnapshotServer(logger.child({ component: 'snapshots' }));
    this.#plantedBugs = plantedBugsOf(config);
  }

  /** The voters the cluster started with (empty on a node that joined later). */
  get membership(): Membership {
    return {
      voters: this.config.members.map((member) => member.name),
      learners: [],
      votersOutgoing: [],
    };
  }

  /** The member nodes every group converges to: the `node:` documents of `_dbs`. */
  get memberNames(): string[] {
    return [...this.catalog.nodes.keys()].sort();
  }

  get openGroups(): ReadonlyMap<string, OpenGroup> {
    return this.#groups;
  }

  /** Lists the compactions and snapshot transfers running on this node for `_active_tasks`. */
  localTasks(): ActiveTask[] {
    const tasks: ActiveTask[] = [];
    for (const open of this.#groups.values()) {
      const progress = open.file.compaction;
      if (progress === null) continue;
      tasks.push({
        type: 'database_compaction',
        taskId: progress.taskId,
        node: this.config.name,
        database: open.name,
        phase: progress.phase,
        retry: progress.round > 1,
        changesDone: progress.changesDone,
        totalChanges: progress.totalChanges,
        startedOn: unixSeconds(progress.startedAt),
        updatedOn: unixSeconds(progress.updatedAt),
      });
    }
    for (const transfer of this.snapshotTransfers.tasks(this.config.name)) {
      tasks.push({
        type: 'raft_snapshot',
        database: transfer.database,
        startedOn: transfer.started_on,
        json: { ...transfer },
      });
    }
    return tasks;
  }

  /**
   * Lists the tasks of every member node: this node's own, and each other member's, requested
   * over the peer transport. A node that does not reply within `timeoutMs` is left out.
   */
  async clusterTasks(timeoutMs: number): Promise<ActiveTask[]> {
    const others = this.memberNames.filter((name) => name !== this.config.name);
    const replies = await Promise.all(
      others.map(async (name) => {
        try {
          const reply = (await this.transport.request(name, { kind: 'tasks' }, { timeoutMs })) as {
            status?: unknown;
            tasks?: unknown;
          };
          return reply?.status === 'ok' && Array.isArray(reply.tasks)
            ? (reply.tasks as ActiveTask[])
            : [];
        } catch {
          return [];
        }
      }),
    );
    return [...this.localTasks(), ...replies.flat()];
  }

  get dbs(): OpenGroup {
    return this.#dbs;
  }

  async start(): Promise<void> {
    await this.#fileSystem.mkdir(join(this.config.dataDir, 'databases'));
    this.transport = new Transport({
      nodeId: this.config.name,
      listen: `${this.config.peer.host}:${this.config.peer.port}`,
      peers: Object.fromEntries(
        this.config.members
          .filter((member) => member.name !== this.config.name)
          .map((member) => [member.name, `${member.peer.host}:${member.peer.port}`]),
      ),
      secret: this.config.secret,
      limits: { maxMessageBytes: this.config.maxRequestBytes + 1024 * 1024 },
      logger: this.log,
      ...(this.config.peerTls === undefined ? {} : { tls: this.config.peerTls }),
    });
    this.transport.onMessage((from, payload) => this.#onMessage(from, payload));
    this.transport.onRequest((from, payload) => this.#onRequest(from, payload));
    this.transport.on('peer-down', (peer) => this.#onPeerDown(peer));

    const dbsFile = await this.#openOrCreateFile(
      join(this.config.dataDir, '_dbs.couch'),
      DBS_GROUP,
      null,
      this.membership.voters.includes(this.config.name) ? this.membership : EMPTY_MEMBERSHIP,
    );
    this.#dbs = this.#startGroup(DBS_GROUP, DBS_GROUP, dbsFile);
    this.#groups.set(DBS_GROUP, this.#dbs);
    dbsFile.onUpdate(() => this.#refreshCatalog());
    this.#refreshCatalog();
    await this.transport.start();

    this.#updatePeers();
    const fresh = dbsFile.hardState.term === 0 && dbsFile.applied.index === 0;
    if (fresh && this.config.members[0]?.name === this.config.name) this.#dbs.group.campaign();
    else if (!fresh) this.#campaignSoon(this.#dbs);
    this.#tickTimer = setInterval(() => this.#tick(), this.config.tickMs);
    this.log.info(
      {
        peer: `${this.config.peer.host}:${this.config.peer.port}`,
        members: this.membership.voters,
      },
      'node started',
    );
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tickTimer !== null) clearInterval(this.#tickTimer);
    for (const deferred of this.#deferredFailovers.values()) clearTimeout(deferred.timer);
    this.#deferredFailovers.clear();
    await this.#reconcileChain.catch(() => undefined);
    await this.transport.stop();
    await this.snapshots.close();
    await Promise.all([...this.#opening.values()].map((opening) => opening.catch(() => null)));
    for (const open of this.#groups.values()) {
      await open.group.close();
      await open.file.close();
    }
    this.#groups.clear();
  }

  /** Returns a request id for a new command: node name, boot id and a counter. */
  nextRequestId(): string {
    this.#requestCounter += 1;
    return `${this.config.name}-${this.bootId}-${this.#requestCounter.toString(36)}`;
  }

  /** Returns the open group of a database, opening it if the catalog lists it; else dbNotFound. */
  async groupOf(name: string): Promise<OpenGroup> {
    const entry = this.catalog.get(name);
    if (entry === undefined) throw errors.dbNotFound();
    return this.#openGroup(entry);
  }

  /** Opens (or returns) the group of a catalog entry; the file must exist or be creatable. */
  async #openGroup(entry: DatabaseEntry): Promise<OpenGroup> {
    const open = this.#groups.get(entry.uuid);
    if (open !== undefined) {
      open.lastUsedAt = Date.now();
      return open;
    }
    const opening = this.#opening.get(entry.uuid);
    if (opening !== undefined) return opening;
    const promise = this.#loadGroup(entry).finally(() => this.#opening.delete(entry.uuid));
    this.#opening.set(entry.uuid, promise);
    return promise;
  }

  async #loadGroup(entry: DatabaseEntry): Promise<OpenGroup> {
    if (this.#stopped) throw errors.unavailable('the node is stopping');
    const file = await this.#openOrCreateFile(
      this.#databasePath(entry.uuid),
      entry.name,
      entry.uuid,
      this.#initialMembership(entry),
    );
    if (this.catalog.byUuid(entry.uuid) === undefined) {
      await file.close();
      throw errors.dbNotFound();
    }
    const open = this.#startGroup(entry.uuid, entry.name, file);
    this.#groups.set(entry.uuid, open);
    this.#flushPending(entry.uuid, open);
    // The first candidate of a new group campaigns at once instead of after a timeout.
    if (entry.candidate === this.config.name && file.hardState.term === 0) open.group.campaign();
    else if (file.hardState.term > 0) this.#campaignSoon(open);
    return open;
  }

  async #openOrCreateFile(
    path: string,
    name: string,
    uuid: string | null,
    membership: Membership,
  ): Promise<DatabaseFile> {
    const options = { fileSystem: this.#fileSystem };
    if (await this.#fileSystem.exists(path)) return DatabaseFile.open(path, options);
    return DatabaseFile.create(path, {
      ...options,
      name,
      ...(uuid === null ? {} : { uuid }),
      membership,
    });
  }

  /**
   * The membership a new file of `entry`'s group starts with: the voters its creation named,
   * when this node is one of them; otherwise none, because this node joins the group later and
   * learns its membership from the log or a snapshot.
   */
  #initialMembership(entry: DatabaseEntry): Membership {
    const voters = entry.voters.length > 0 ? entry.voters : this.membership.voters;
    if (!voters.includes(this.config.name)) return EMPTY_MEMBERSHIP;
    return { voters: [...voters], learners: [], votersOutgoing: [] };
  }

  #databasePath(uuid: string): string {
    return join(this.config.dataDir, 'databases', `${uuid}.couch`);
  }

  #startGroup(id: string, name: string, file: DatabaseFile): OpenGroup {
    const logger = this.log.child({ db: name, group: id });
    let open: OpenGroup;
    const group = new RaftGroup<AppliedEntry>({
      node: this.config.name,
      name,
      file: groupFileOf(file),
      send: (to, message) => this.#send(id, to, message),
      random: Math.random,
      logger,
      retentionEntries: this.config.logRetentionEntries,
      retentionBytes: this.config.logRetentionBytes,
      plantedBugs: this.#plantedBugs,
      // The catalog must apply at once on every node. A node that learned of a deletion a tick
      // late would still route reads of the deleted database to its group.
      lazyCommit: id !== DBS_GROUP,
      batchFollowerApplies: id !== DBS_GROUP,
      holdApplies: id !== DBS_GROUP,
      metrics: this.metrics,
      onFatal: (error) => this.#onFatal(name, error),
      installSnapshot: (requested, from, hardState) =>
        this.#installSnapshot(open, requested, from, hardState),
      onLeaderAwaited: () => this.#wakeDeferredFailover(id),
    });
    open = { id, name, file, group, lastUsedAt: Date.now() };
    return open;
  }

  /**
   * Fetches `open`'s snapshot from `from` and installs it in place of its file. The old file
   * stays in place and open until the new one is complete and synced.
   */
  async #installSnapshot(
    open: OpenGroup,
    requested: SnapshotMeta,
    from: NodeId,
    hardState: HardState,
  ): Promise<{ file: GroupFile<AppliedEntry>; meta: SnapshotMeta }> {
    const livePath = open.file.path;
    const receivedPath = `${livePath}.snapshot`;
    const deadline = Date.now() + SNAPSHOT_TIMEOUT_MS;
    const transfer = this.snapshotTransfers.begin(open.name, from);
    const fetched = await fetchSnapshot({
      transport: this.transport,
      fileSystem: this.#fileSystem,
      group: open.id,
      leader: from,
      path: receivedPath,
      deadline,
      log: this.log.child({ db: open.name, group: open.id }),
      onProgress: (done, total) => transfer.update(done, total),
    }).finally(() => transfer.end());
    if (fetched.index < requested.index) {
      throw new Error(
        `snapshot at ${fetched.index} is older than the requested ${requested.index}`,
      );
    }
    await open.file.close();
    let file: DatabaseFile;
    try {
      file = await installSnapshot(receivedPath, livePath, {
        hardState,
        fileSystem: this.#fileSystem,
      });
    } catch (error) {
      open.file = await DatabaseFile.open(livePath, { fileSystem: this.#fileSystem });
      throw error;
    }
    open.file = file;
    if (open.id === DBS_GROUP) {
      file.onUpdate(() => this.#refreshCatalog());
      this.#refreshCatalog();
    }
    return { file: groupFileOf(file), meta: file.snapshotMeta() };
  }

  // ---------------------------------------------------------------------------------------
  // Writes

  /**
   * Proposes a command to a group and resolves with its outcome once applied. Forwards to the
   * leader's node when this node does not lead, retrying with the same request id until
   * `deadline`; then fails with 503 (unknown outcome when the command may have been applied).
   */
  async propose(
    groupId: string,
    command: Command,
    deadline: number,
    authorization?: WriteAuthorization,
  ): Promise<EntryOutcome> {
    const payload = encodeCommand(command);
    let maybeApplied = false;
    while (Date.now() < deadline) {
      const open = await this.#groupById(groupId);
      const status = open.group.status();
      if (status.role === 'leader') {
        try {
          if (authorization !== undefined) {
            await this.#authorizeWrite(open, authorization, deadline);
          }
          return (await open.group.propose(payload, deadline)).outcome;
        } catch (error) {
          if (error instanceof UnknownOutcomeError) throw unknownOutcome();
          if (!(error instanceof NotLeaderError || error instanceof DroppedProposalError)) {
            throw error;
          }
          // The core refuses proposals during a leadership transfer and right after losing
          // leadership. Yield before retrying, or this loop starves the event loop that must
          // send the transfer's messages and learn the new term.
          await pause(RETRY_PAUSE_MS);
          continue;
        }
      }
      let leader = status.leader;
      if (leader === NO_NODE) {
        leader = await open.group.waitForLeader(Math.min(deadline, Date.now() + LEADER_WAIT_MS));
      }
      if (leader === NO_NODE || leader === this.config.name) {
        await pause(RETRY_PAUSE_MS);
        continue;
      }
      const forwarded = await this.#forward(leader, groupId, payload, deadline, authorization);
      if (forwarded.outcome !== undefined) return forwarded.outcome;
      maybeApplied ||= forwarded.maybeApplied;
      this.forwardRetries++;
      await pause(RETRY_PAUSE_MS);
    }
    if (maybeApplied) throw unknownOutcome();
    throw errors.unavailable('no leader accepted the write in time; it was not applied');
  }

  async #forward(
    leader: NodeId,
    groupId: string,
    payload: Uint8Array,
    deadline: number,
    authorization: WriteAuthorization | undefined,
  ): Promise<{ outcome?: EntryOutcome; maybeApplied: boolean }> {
    const timeoutMs = Math.max(1, deadline - Date.now());
    const request: ProposeRequest = {
      kind: 'propose',
      group: groupId,
      timeoutMs,
      command: payload,
      ...(authorization === undefined ? {} : { authorization }),
    };
    try {
      const reply = (await this.transport.request(leader, request, { timeoutMs })) as ProposeReply;
      if (reply.status === 'ok')
        return { outcome: decodeOutcome(reply.outcome), maybeApplied: true };
      if (reply.status === 'denied') throw new CouchError(reply.code, reply.error, reply.reason);
      return { maybeApplied: reply.status === 'unknown' };
    } catch (error) {
      if (error instanceof RequestError) return { maybeApplied: !error.notSent };
      throw error;
    }
  }

  async #onRequest(from: string, payload: unknown): Promise<unknown> {
    const kind = (payload as { kind?: unknown } | null)?.kind;
    if (kind === 'transfer') {
      return this.#onTransferRequest(from, payload as Partial<TransferRequest>);
    }
    if (kind === 'snapshot') {
      return this.#onSnapshotRequest(from, payload as Partial<SnapshotChunkRequest>);
    }
    if (kind === 'tasks') return { status: 'ok', tasks: this.localTasks() };
    const request = payload as Partial<ProposeRequest> | null;
    if (
      request === null ||
      typeof request !== 'object' ||
      request.kind !== 'propose' ||
      typeof request.group !== 'string' ||
      typeof request.timeoutMs !== 'number' ||
      !(request.command instanceof Uint8Array) ||
      (request.authorization !== undefined && !isWriteAuthorization(request.authorization))
    ) {
      this.log.warn({ from }, 'malformed forwarded request dropped');
      return { status: 'unknown_group' };
    }
    let open: OpenGroup;
    try {
      open = await this.#groupById(request.group);
    } catch {
      return { status: 'unknown_group' };
    }
    const timeoutMs = Math.min(Math.max(request.timeoutMs, 1), MAX_FORWARD_TIMEOUT_MS);
    try {
      if (request.authorization !== undefined) {
        if (open.group.status().role !== 'leader') {
          return { status: 'not_leader', leader: open.group.status().leader };
        }
        await this.#authorizeWrite(open, request.authorization, Date.now() + timeoutMs);
      }
      const applied = await open.group.propose(request.command, Date.now() + timeoutMs);
      return { status: 'ok', outcome: encodeOutcome(applied.outcome) };
    } catch (error) {
      if (error instanceof NotLeaderError) return { status: 'not_leader', leader: error.leader };
      if (error instanceof DroppedProposalError) return { status: 'dropped' };
      if (error instanceof UnknownOutcomeError) return { status: 'unknown' };
      if (isCouchError(error) && (error.status === 401 || error.status === 403)) {
        return { status: 'denied', code: error.status, error: error.error, reason: error.reason };
      }
      throw error;
    }
  }

  /**
   * Authorizes a write on the group's leader: after a read barrier, this node's applied
   * `_security` includes every change committed before the write arrived, so a write is never
   * accepted against an older copy. Raises 401 or 403 when the caller may not write.
   *
   * NOTE: a `_security` change committed between this check and the write's own commit does
   * not apply to the write. The two are concurrent, so the write is ordered by its check.
   */
  async #authorizeWrite(
    open: OpenGroup,
    authorization: WriteAuthorization,
    deadline: number,
  ): Promise<void> {
    if (isServerAdmin(authorization.user)) return;
    if (authorization.access === 'user_document') {
      if (open.name === USERS_DATABASE) return;
      throw errors.forbidden('Only user documents of _users are checked by their owner.');
    }
    await open.group.readBarrier(deadline);
    const snapshot = open.file.snapshot();
    let security: SecurityObject;
    try {
      security = parseSecurity(snapshot.security());
    } finally {
      snapshot.close();
    }
    const defaultSecurity = this.config.defaultSecurity ?? 'admin_only';
    const denied = checkDatabaseAccess(
      authorization.user,
      security,
      authorization.access,
      defaultSecurity,
    );
    if (denied !== null) throw denied;
  }

  /**
   * Moves the leadership of a group to `to` and resolves with the leader at the end. Forwards to
   * the leader's node when this node does not lead; rejections carry an HTTP status and reason.
   */
  async transferLeader(groupId: string, to: string, deadline: number): Promise<TransferReply> {
    while (Date.now() < deadline) {
      const open = await this.#groupById(groupId);
      const status = open.group.status();
      if (status.role === 'leader') {
        const reply = await this.#transferHere(open, to, deadline);
        if (reply.status !== 'not_leader') return reply;
        continue;
      }
      const leader =
        status.leader !== NO_NODE
          ? status.leader
          : await open.group.waitForLeader(Math.min(deadline, Date.now() + LEADER_WAIT_MS));
      if (leader === to) return { status: 'ok', leader };
      if (leader === NO_NODE || leader === this.config.name) {
        await pause(RETRY_PAUSE_MS);
        continue;
      }
      const timeoutMs = Math.max(1, deadline - Date.now());
      const request: TransferRequest = { kind: 'transfer', group: groupId, to, timeoutMs };
      try {
        const reply = (await this.transport.request(leader, request, {
          timeoutMs,
        })) as TransferReply;
        if (reply.status === 'ok' || reply.status === 'rejected') return reply;
      } catch (error) {
        if (!(error instanceof RequestError)) throw error;
      }
      await pause(RETRY_PAUSE_MS);
    }
    const open = await this.#groupById(groupId);
    const leader = open.group.status().leader;
    if (leader === to) return { status: 'ok', leader };
    return {
      status: 'rejected',
      code: 503,
      error: 'service_unavailable',
      reason: `leadership did not move to ${to} in time; the leader is ${leader || 'unknown'}`,
    };
  }

  async #transferHere(open: OpenGroup, to: string, deadline: number): Promise<TransferReply> {
    const result = open.group.transferLeader(to);
    if (!result.ok) {
      switch (result.reason) {
        case 'not_leader':
          return { status: 'not_leader', leader: result.leader };
        case 'already_leader':
          return { status: 'ok', leader: to };
        case 'transfer_in_progress':
          if (result.target !== to) {
            return rejected(
              409,
              'conflict',
              `a leadership transfer to ${result.target} is in progress`,
            );
          }
          break;
        case 'not_a_voter':
          return rejected(
            400,
            'bad_request',
            result.learner
              ? `${to} is a learner of this group; only voters can lead`
              : `${to} is not a member of this group`,
          );
        case 'lagging':
          return rejected(
            503,
            'service_unavailable',
            `${to} is behind the leader (entry ${result.match} of ${result.lastIndex}); try again once it has caught up`,
          );
      }
    }
    const leader = await open.group.waitForLeader(deadline, to);
    if (leader === to) return { status: 'ok', leader };
    return rejected(503, 'service_unavailable', `leadership did not move to ${to} in time`);
  }

  async #onSnapshotRequest(from: string, request: Partial<SnapshotChunkRequest>) {
    if (
      typeof request.group !== 'string' ||
      typeof request.offset !== 'number' ||
      !Number.isSafeInteger(request.offset) ||
      request.offset < 0 ||
      (request.id !== null && typeof request.id !== 'string')
    ) {
      this.log.warn({ from }, 'malformed snapshot request dropped');
      return { status: 'unknown_group' as const };
    }
    let file: DatabaseFile | null = null;
    if (request.id === null) {
      try {
        file = (await this.#groupById(request.group)).file;
      } catch {
        file = null;
      }
    }
    return this.snapshots.serve(request as SnapshotChunkRequest, file);
  }

  async #onTransferRequest(
    from: string,
    request: Partial<TransferRequest>,
  ): Promise<TransferReply> {
    if (
      typeof request.group !== 'string' ||
      typeof request.to !== 'string' ||
      typeof request.timeoutMs !== 'number'
    ) {
      this.log.warn({ from }, 'malformed transfer request dropped');
      return { status: 'unknown_group' };
    }
    let open: OpenGroup;
    try {
      open = await this.#groupById(request.group);
    } catch {
      return { status: 'unknown_group' };
    }
    const timeoutMs = Math.min(Math.max(request.timeoutMs, 1), MAX_FORWARD_TIMEOUT_MS);
    return this.#transferHere(open, request.to, Date.now() + timeoutMs);
  }

  /** The open group with `id` (`_dbs` or a database uuid); dbNotFound when none exists. */
  async #groupById(id: string): Promise<OpenGroup> {
    if (id === DBS_GROUP) return this.#dbs;
    const entry = this.catalog.byUuid(id);
    if (entry === undefined) throw errors.dbNotFound();
    return this.#openGroup(entry);
  }

  // ---------------------------------------------------------------------------------------
  // Messages

  #send(groupId: string, to: NodeId, message: Message): void {
    this.messagesSent[message.type] = (this.messagesSent[message.type] ?? 0) + 1;
    const lane = isBulk(message) ? 'bulk' : 'control';
    const sent = this.transport.send(to, lane, encodeGroupMessage(groupId, message));
    if (!sent && message.type === 'append') {
      this.#groups.get(groupId)?.group.raw.reportUnreachable(to);
    }
    if (message.type === 'pre_vote_response' && message.reject) {
      this.#onPreVoteRejected(groupId, to);
    }
  }

  #onMessage(from: string, payload: unknown): void {
    const decoded = decodeGroupMessage(payload);
    if (
      decoded === null ||
      decoded.message.from !== from ||
      decoded.message.to !== this.config.name
    ) {
      this.log.debug({ from }, 'malformed or misaddressed peer message dropped');
      return;
    }
    this.#deliver(decoded);
  }

  #deliver({ group, message }: GroupMessage): void {
    const open = this.#groups.get(group);
    if (open !== undefined) {
      if (message.type === 'pre_vote') this.#notePreVote(open, message.from);
      open.group.step(message);
      return;
    }
    const entry = this.catalog.byUuid(group);
    if (entry !== undefined) {
      this.#queuePending(group, message);
      this.#openGroup(entry).catch((error: unknown) => {
        if (!isCouchError(error)) this.log.error({ err: error, group }, 'opening a group failed');
      });
      return;
    }
    if (this.catalog.isDeleted(group)) return;
    this.#queuePending(group, message);
  }

  /**
   * Keeps a pre-vote that arrives while this node still has a leader: the core ignores it
   * under the leader lease, or rejects it. If that leader's node turns out lost,
   * `#onPeerDown` counts it as a rejected failover campaign.
   */
  #notePreVote(open: OpenGroup, candidate: string): void {
    const leader = open.group.raw.leader;
    if (leader === NO_NODE || leader === candidate) return;
    this.#earlyRejections.set(open.id, { candidate, atMs: performance.now() });
  }

  #queuePending(group: string, message: Message): void {
    if (this.#pendingCount >= MAX_PENDING_MESSAGES) return;
    let pending = this.#pending.get(group);
    if (pending === undefined) {
      pending = { messages: [], firstAt: Date.now() };
      this.#pending.set(group, pending);
    }
    pending.messages.push(message);
    this.#pendingCount++;
  }

  #flushPending(group: string, open: OpenGroup): void {
    const pending = this.#pending.get(group);
    if (pending === undefined) return;
    this.#pending.delete(group);
    this.#pendingCount -= pending.messages.length;
    for (const message of pending.messages) open.group.step(message);
  }

  #onPeerDown(peer: string): void {
    const now = performance.now();
    for (const [id, failover] of this.#failovers) {
      if (now - failover.atMs > FAILOVER_WINDOW_MS) this.#failovers.delete(id);
    }
    this.#forgetEarlyRejections(now);
    for (const open of this.#groups.values()) {
      const status = open.group.status();
      if (status.leader !== peer) continue;
      open.group.forgetLeader();
      const turn = failoverTurn(open.id, status.membership.voters, peer, this.config.name);
      if (turn < 0) continue;
      const survivors = status.membership.voters.filter((name) => name !== peer).length;
      this.#failovers.set(open.id, {
        lost: peer,
        voters: status.membership.voters,
        atMs: now,
      });
      const turnDelayMs = turn * FAILOVER_CAMPAIGN_STEP_MS;
      const early = this.#earlyRejections.get(open.id);
      this.#earlyRejections.delete(open.id);
      if (now - open.group.lastNewEntryAtMs > FAILOVER_IDLE_AFTER_MS) {
        this.#deferFailover(open, turnDelayMs, survivors);
        continue;
      }
      this.#failoverCampaign(open, turnDelayMs, survivors, 0);
      // A survivor that noticed the loss first campaigned, and this node, which still had the
      // leader, turned it down. That candidate would wait a whole round, so the turns start
      // again without it. Idle groups are left out, because their pre-votes come from a
      // restarted node looking for its leaders, not from a failover.
      if (early !== undefined) this.#onPreVoteRejected(open.id, early.candidate);
    }
  }

  /** Drops the early rejections too old to count, so the map does not grow with time. */
  #forgetEarlyRejections(now: number): void {
    for (const [id, rejection] of this.#earlyRejections) {
      if (now - rejection.atMs > EARLY_REJECTION_MS) this.#earlyRejections.delete(id);
    }
  }

  /** Starts an idle group's failover turns after the idle delay, or earlier if woken. */
  #deferFailover(open: OpenGroup, turnDelayMs: number, survivors: number): void {
    const previous = this.#deferredFailovers.get(open.id);
    if (previous !== undefined) clearTimeout(previous.timer);
    const delayMs = FAILOVER_IDLE_DELAY_MS + idleFailoverOffsetMs(open.id) + turnDelayMs;
    const timer = setTimeout(() => {
      this.#deferredFailovers.delete(open.id);
      this.#failoverCampaign(open, 0, survivors, 0);
    }, delayMs);
    this.#deferredFailovers.set(open.id, { timer, turnDelayMs, survivors });
    this.log.debug(
      { db: open.name, group: open.id, delayMs },
      'failover of an idle group deferred',
    );
  }

  /** Starts the deferred failover of `groupId` at once, because a request waits for its leader. */
  #wakeDeferredFailover(groupId: string): void {
    const deferred = this.#deferredFailovers.get(groupId);
    const open = this.#groups.get(groupId);
    if (deferred === undefined || open === undefined) return;
    clearTimeout(deferred.timer);
    this.#deferredFailovers.delete(groupId);
    this.log.info(
      { db: open.name, group: groupId },
      'a request starts the failover of an idle group',
    );
    this.#failoverCampaign(open, deferred.turnDelayMs, deferred.survivors, 0);
  }

  /**
   * Starts this node's failover turns again after it rejected `candidate`'s pre-vote. Two cases:
   * - This node had no leader: its log is newer, so that candidate cannot win. A candidate that
   *   fell behind (a node that restarted and is still catching up) often has the first turn,
   *   and the group would wait a whole round for the next.
   * - This node still saw the leader, because it noticed the loss of the leader's node after
   *   the candidate did, and ignored or rejected the pre-vote. `#notePreVote` keeps it, and
   *   `#onPeerDown` counts it; without it, the candidate would wait a whole round.
   * Either way the turns start again at once without the candidate (the first of the others
   * campaigns at once, the rest a step apart), unless a leader is known by then.
   * NOTE: only the delay rule has a test (test/cluster/failover-turn.test.ts). No test on node
   * processes makes a survivor fall behind, or notice the loss late, just as the leader dies.
   */
  #onPreVoteRejected(groupId: string, candidate: string): void {
    const failover = this.#failovers.get(groupId);
    // An idle group's campaigns wait (`#deferFailover`). A restarted node looking for its
    // leaders sends such pre-votes, and a campaign for each of them would undo the wait.
    if (failover === undefined || this.#deferredFailovers.has(groupId)) return;
    if (performance.now() - failover.atMs > FAILOVER_WINDOW_MS) {
      this.#failovers.delete(groupId);
      return;
    }
    const delayMs = campaignDelayAfterRejecting(groupId, failover, this.config.name, candidate);
    const open = this.#groups.get(groupId);
    if (delayMs === null || open === undefined) return;
    setTimeout(() => {
      if (this.#stopped || this.#groups.get(groupId) !== open) return;
      const status = open.group.status();
      // A pre-candidate campaigns again: once the other survivor rejected it, its round waits
      // for the lost node until an election timeout. A candidate is in a real vote, so it goes on.
      if (status.leader !== NO_NODE || status.role === 'candidate' || status.role === 'leader') {
        return;
      }
      this.log.info(
        { db: open.name, group: groupId, candidate },
        'campaigning after turning down a failover candidate',
      );
      open.group.campaign();
    }, delayMs);
  }

  /**
   * Campaigns after `delayMs` unless a leader is known by then. Each survivor's turns are one
   * round (a step per survivor) apart. A campaign fails when a survivor that has not yet noticed
   * the lost node rejects its pre-vote, or when two candidates split the vote. The next round
   * then tries again, so the group does not wait for an election timeout of 2 to 4 s.
   */
  #failoverCampaign(open: OpenGroup, delayMs: number, survivors: number, round: number): void {
    if (round >= FAILOVER_CAMPAIGN_ROUNDS) return;
    setTimeout(() => {
      if (this.#stopped || this.#groups.get(open.id) !== open) return;
      const now = open.group.status();
      if (now.leader !== NO_NODE) return;
      open.group.campaign();
      this.#failoverCampaign(open, survivors * FAILOVER_CAMPAIGN_STEP_MS, survivors, round + 1);
    }, delayMs + randomInt(FAILOVER_CAMPAIGN_JITTER_MS));
  }

  /**
   * Campaigns after a short random delay if the group still has no leader, so a group reopened
   * after a restart elects at once instead of after an election timeout. Pre-vote keeps
   * this harmless when a leader exists, and the pre-vote wakes that leader if it was quiet, so
   * its heartbeat tells this node who leads.
   */
  #campaignSoon(open: OpenGroup): void {
    setTimeout(
      () => {
        if (this.#stopped || this.#groups.get(open.id) !== open) return;
        const status = open.group.status();
        if (status.leader === NO_NODE && status.role === 'follower') open.group.campaign();
      },
      randomInt(REOPEN_CAMPAIGN_MIN_MS, REOPEN_CAMPAIGN_MAX_MS),
    );
  }

  #tick(): void {
    for (const open of this.#groups.values()) open.group.tick();
    if (++this.#ticksSinceReconcile >= RECONCILE_TICKS) {
      this.#ticksSinceReconcile = 0;
      this.#bootstrapMembers();
      this.#bootstrapUsersDatabase();
      this.#recordOwnAddresses();
      for (const open of this.#groups.values()) this.#reconcileMembership(open);
      this.#forgetEarlyRejections(performance.now());
    }
    const now = Date.now();
    for (const [group, pending] of this.#pending) {
      if (now - pending.firstAt < PENDING_MESSAGE_TTL_MS) continue;
      this.#pending.delete(group);
      this.#pendingCount -= pending.messages.length;
    }
    this.#closeIdleGroups();
    this.snapshots.expire(now);
  }

  /** Closes least recently used groups past the cap; only quiet, idle followers are closed. */
  #closeIdleGroups(): void {
    const excess = this.#groups.size - 1 - this.config.maxOpenDatabases;
    if (excess <= 0) return;
    const candidates = [...this.#groups.values()]
      .filter((open) => open.id !== DBS_GROUP && open.group.idle)
      // Closing a file aborts its compaction, which would then start over from nothing.
      .filter((open) => open.file.compaction === null)
      .filter((open) => {
        const status = open.group.status();
        return status.role === 'follower' && status.quiet;
      })
      .sort((a, b) => a.lastUsedAt - b.lastUsedAt)
      .slice(0, excess);
    for (const open of candidates) {
      this.#groups.delete(open.id);
      void open.group.close().then(() => open.file.close());
    }
  }

  // ---------------------------------------------------------------------------------------
  // Membership

  /**
   * Points the transport at every node this process has known as a member: the `node:`
   * documents and the addresses it was started with, which win (so a proxy named in `--members`
   * stays in the path). Removed nodes stay reachable until the process restarts, because the
   * leader still tells a removed node that its removal committed, and a reply to a request the
   * removed node forwarded must still reach it.
   */
  #updatePeers(): void {
    for (const [name, peer] of this.#joinPeers) this.#knownPeers.set(name, peer);
    for (const node of this.catalog.nodes.values()) this.#knownPeers.set(node.name, node.peer);
    for (const member of this.config.members) {
      this.#knownPeers.set(member.name, `${member.peer.host}:${member.peer.port}`);
    }
    const peers = Object.fromEntries(this.#knownPeers);
    delete peers[this.config.name];
    this.transport.setPeers(peers);
  }

  /**
   * Starts asking the cluster named by `config.join`, if any, to add this node. Call it once
   * the HTTP listener is up: the members record the HTTP address this node sends, and a node
   * that could not listen must not become a member.
   */
  startJoining(): void {
    if (this.config.join !== undefined && !this.#stopped) void this.#join(this.config.join);
  }

  /**
   * Asks the cluster at `url` to add this node as a member, retrying until it accepts. The
   * request is idempotent, so a node restarted with the same `--join` asks again harmlessly.
   */
  async #join(url: string): Promise<void> {
    const admin = this.config.admins[0];
    if (admin === undefined || admin.password.startsWith('-pbkdf2')) {
      this.log.error('--join needs a server admin with a clear password (--admin NAME:PASSWORD)');
      return;
    }
    const authorization = `Basic ${Buffer.from(`${admin.name}:${admin.password}`).toString('base64')}`;
    const base = url.replace(/\/+$/, '');
    const self = {
      peer: `${this.config.peer.host}:${this.config.peer.port}`,
      http: `${this.config.http.host}:${this.config.http.port}`,
    };
    while (!this.#stopped) {
      try {
        const listed = await httpRequest(`${base}/_node/_local/_nodes`, {
          headers: { authorization },
        });
        const body = (await listed.body.json()) as { nodes?: { name: string; peer: string }[] };
        if (listed.statusCode !== 200 || !Array.isArray(body.nodes)) {
          throw new Error(`listing the members returned ${listed.statusCode}`);
        }
        for (const node of body.nodes) this.#joinPeers.set(node.name, node.peer);
        this.#updatePeers();
        const added = await httpRequest(`${base}/_node/_local/_nodes/${this.config.name}`, {
          method: 'PUT',
          headers: { authorization, 'content-type': 'application/json' },
          body: JSON.stringify(self),
        });
        const reply = await added.body.text();
        if (added.statusCode === 200 || added.statusCode === 201) {
          this.log.info({ via: base }, 'joined the cluster');
          return;
        }
        throw new Error(`adding this node returned ${added.statusCode}: ${reply}`);
      } catch (error) {
        this.log.warn({ err: error, via: base }, 'joining the cluster failed; retrying');
        await pause(JOIN_RETRY_MS);
      }
    }
  }

  /**
   * Records the starting voters as member documents, once, on the first `_dbs` leader: from
   * then on the documents alone define the members, so a removed node never comes back because
   * an old `--members` list still names it.
   */
  #bootstrapMembers(): void {
    if (this.#bootstrapping || this.catalog.nodes.size > 0 || this.config.members.length === 0) {
      return;
    }
    if (this.#dbs.group.status().role !== 'leader') return;
    this.#bootstrapping = true;
    const docs = this.config.members.map((member) => ({
      id: nodeDocId(member.name),
      revisions: { start: 0, ids: [] },
      deleted: false,
      attachments: null,
      body: nodeBody(
        `${member.peer.host}:${member.peer.port}`,
        member.name === this.config.name ? `${this.config.http.host}:${this.config.http.port}` : '',
      ),
    }));
    this.propose(
      DBS_GROUP,
      documentsCommand(this.nextRequestId(), { newEdits: true, docs }),
      Date.now() + this.config.writeTimeoutMs,
    )
      .catch((error: unknown) => this.log.warn({ err: error }, 'recording the members failed'))
      .finally(() => {
        this.#bootstrapping = false;
      });
  }

  /**
   * Creates `_users` with the cluster, once: the `_dbs` leader proposes its catalog document
   * when `_dbs` has never had one. A `_users` deleted by an admin stays deleted.
   */
  #bootstrapUsersDatabase(): void {
    if (this.#creatingUsers || this.catalog.nodes.size === 0) return;
    if (this.#dbs.group.status().role !== 'leader') return;
    const snapshot = this.#dbs.file.snapshot();
    let recorded: boolean;
    try {
      recorded = snapshot.document(catalogDocId(USERS_DATABASE)) !== null;
    } finally {
      snapshot.close();
    }
    if (recorded) return;
    this.#creatingUsers = true;
    const uuid = randomBytes(USERS_UUID_BYTES).toString('hex');
    const voters = this.#dbs.group.status().membership.voters;
    const doc = {
      id: catalogDocId(USERS_DATABASE),
      revisions: { start: 0, ids: [] },
      deleted: false,
      attachments: null,
      body: catalogBody(uuid, this.config.name, voters),
    };
    this.propose(
      DBS_GROUP,
      documentsCommand(this.nextRequestId(), { newEdits: true, docs: [doc] }),
      Date.now() + this.config.writeTimeoutMs,
    )
      .then((outcome) => {
        const result = outcome.kind === 'documents' ? outcome.results[0] : undefined;
        if (result?.ok === true) this.log.info({ db: USERS_DATABASE }, 'database created');
        else this.log.warn({ db: USERS_DATABASE, outcome }, 'creating the database failed');
      })
      .catch((error: unknown) => this.log.warn({ err: error }, 'creating _users failed'))
      .finally(() => {
        this.#creatingUsers = false;
      });
  }

  /**
   * Corrects this node's member document when its addresses differ from the ones it runs with
   * (the bootstrap records only peer addresses of other nodes, and a node may move).
   */
  #recordOwnAddresses(): void {
    const own = this.catalog.nodes.get(this.config.name);
    const peer = `${this.config.peer.host}:${this.config.peer.port}`;
    const http = `${this.config.http.host}:${this.config.http.port}`;
    if (own === undefined || (own.peer === peer && own.http === http) || this.#bootstrapping) {
      return;
    }
    const snapshot = this.#dbs.file.snapshot();
    let rev: { pos: number; id: string } | null;
    try {
      const record = snapshot.document(nodeDocId(this.config.name));
      rev = record === null || record.deleted ? null : record.winner;
    } finally {
      snapshot.close();
    }
    if (rev === null) return;
    this.#bootstrapping = true;
    const doc = {
      id: nodeDocId(this.config.name),
      revisions: { start: rev.pos, ids: [rev.id] },
      deleted: false,
      attachments: null,
      body: nodeBody(peer, http),
    };
    this.propose(
      DBS_GROUP,
      documentsCommand(this.nextRequestId(), { newEdits: true, docs: [doc] }),
      Date.now() + this.config.writeTimeoutMs,
    )
      .catch((error: unknown) => this.log.warn({ err: error }, 'recording this node failed'))
      .finally(() => {
        this.#bootstrapping = false;
      });
  }

  /**
   * Moves a group this node leads one step toward the cluster's members: new members join as
   * learners, caught-up learners become voters, and only then do voters that left go, so the
   * group never has fewer voters than needed while a replacement catches up.
   */
  #reconcileMembership(open: OpenGroup): void {
    const members = this.memberNames;
    if (members.length === 0) return;
    const status = open.group.status();
    if (status.role !== 'leader' || status.membership.votersOutgoing.length > 0) return;
    const current = status.membership;
    const promotable = new Set(open.group.raw.promotableLearners());
    const voters = current.voters.filter((node) => members.includes(node));
    for (const node of current.learners) {
      if (members.includes(node) && promotable.has(node)) voters.push(node);
    }
    const catchingUp = members.some((node) => !voters.includes(node));
    if (catchingUp) {
      for (const node of current.voters) if (!voters.includes(node)) voters.push(node);
    }
    if (voters.length === 0) return;
    const learners = members.filter((node) => !voters.includes(node));
    const steps = stepsToTarget(current, { voters, learners });
    if (steps.length === 0) return;
    const result = open.group.proposeConfChange(steps);
    if (result.ok) {
      this.log.info({ db: open.name, steps, index: result.index }, 'membership change proposed');
    } else {
      this.log.debug({ db: open.name, steps, reason: result.reason }, 'membership change deferred');
    }
  }

  /** Opens every database group, so that each one's leader moves it to the new members. */
  async #openAllGroups(): Promise<void> {
    const entries = this.catalog.names().map((name) => this.catalog.get(name)!);
    let next = 0;
    const worker = async () => {
      while (next < entries.length && !this.#stopped) {
        const entry = entries[next++]!;
        await this.#openGroup(entry).catch((error: unknown) => {
          if (!isCouchError(error)) this.log.warn({ err: error, db: entry.name }, 'opening failed');
        });
      }
    };
    await Promise.all(Array.from({ length: OPEN_ALL_CONCURRENCY }, worker));
  }

  // ---------------------------------------------------------------------------------------
  // Catalog

  /**
   * Follows `_dbs` after each apply: the catalog changes at once (so reads see databases
   * exactly as `_dbs` has applied them), while opening and removing files happens after, in
   * order. A new group is opened here only when this node is its first candidate or messages
   * for it are waiting; other nodes open it when its first message or request arrives.
   */
  #refreshCatalog(): void {
    if (this.#stopped) return;
    const snapshot = this.#dbs.file.snapshot();
    let changes: ReturnType<Catalog['refresh']>;
    try {
      changes = this.catalog.refresh(snapshot);
    } finally {
      snapshot.close();
    }
    if (changes.nodesChanged) {
      this.#updatePeers();
      this.#afterCatalog(() => this.#openAllGroups());
    }
    for (const entry of changes.deleted) {
      this.#pending.delete(entry.uuid);
      this.#afterCatalog(() => this.#removeDatabase(entry));
    }
    for (const entry of changes.created) {
      if (entry.candidate !== this.config.name && !this.#pending.has(entry.uuid)) continue;
      this.#afterCatalog(async () => {
        if (this.catalog.byUuid(entry.uuid) !== undefined) await this.#openGroup(entry);
      });
    }
  }

  #afterCatalog(action: () => Promise<void>): void {
    this.#reconcileChain = this.#reconcileChain.then(action).catch((error: unknown) => {
      if (!isCouchError(error)) this.log.error({ err: error }, 'catalog change failed');
    });
  }

  async #removeDatabase(entry: DatabaseEntry): Promise<void> {
    const opening = this.#opening.get(entry.uuid);
    if (opening !== undefined) await opening.catch(() => null);
    const open = this.#groups.get(entry.uuid);
    if (open !== undefined) {
      this.#groups.delete(entry.uuid);
      await open.group.close();
      await open.file.close();
    }
    const path = this.#databasePath(entry.uuid);
    if (await this.#fileSystem.exists(path)) {
      await this.#fileSystem.unlink(path);
      this.log.info({ db: entry.name, group: entry.uuid }, 'database deleted');
    }
  }

  #onFatal(name: string, error: unknown): void {
    this.log.fatal({ err: error, db: name }, 'a database file failed; the node stops');
    process.emitWarning(`divan: database file of ${name} failed`);
    process.exitCode = 1;
    setImmediate(() => process.exit(1));
  }
}

/** Adapts the engine's database file to the group driver's `GroupFile`. */
export function groupFileOf(file: DatabaseFile): GroupFile<AppliedEntry> {
  return {
    raftState: () => ({
      hardState: file.hardState,
      appliedIndex: file.applied.index,
      appliedTerm: file.applied.term,
      discardedIndex: file.discarded.index,
      discardedTerm: file.discarded.term,
      membership: file.membership,
    }),
    readLogEntries: (from, to) => {
      const last = Math.min(to - 1, file.logExtent().lastIndex);
      return last < from ? [] : file.readLogEntries(from, last);
    },
    readRetainedShape: () => {
      const extent = file.logExtent();
      return file.readLogShape(extent.firstIndex, extent.lastIndex);
    },
    stage: (commit) =>
      file.stage({
        ...(commit.truncateAfter === undefined ? {} : { truncateAfter: commit.truncateAfter }),
        append: commit.append,
        ...(commit.hardState === undefined ? {} : { hardState: commit.hardState }),
        ...(commit.membership === undefined ? {} : { membership: commit.membership }),
        apply: commit.apply.map((entry) => ({ index: entry.index, term: entry.term })),
        ...(commit.discardUpTo === undefined ? {} : { discardUpTo: commit.discardUpTo }),
        ...(commit.holdApply === true ? { holdApply: true } : {}),
        sync: commit.sync,
      }),
    writeHeldApply: () => file.writeHeldApply(),
    appliedInTrees: () => file.appliedInTrees,
    hashChain: () => file.hashChain.toString('hex'),
  };
}

function unknownOutcome() {
  return errors.unknownOutcome(
    'The write may or may not have been applied: the leader changed or the request timed out before its outcome was known. Read the document to find out.',
  );
}

/** The core bugs a test run planted, checked against the known names. */
function plantedBugsOf(config: NodeConfig): PlantedBug[] {
  const bugs = new Set<PlantedBug>();
  if (config.unsafeAckBeforeFsync === true) bugs.add('ack_before_durable');
  for (const name of config.plantedBugs ?? []) {
    if (!(PLANTED_BUGS as readonly string[]).includes(name)) {
      throw new Error(`unknown planted bug '${name}': expected one of ${PLANTED_BUGS.join(', ')}`);
    }
    bugs.add(name as PlantedBug);
  }
  return [...bugs];
}

function rejected(code: number, error: string, reason: string): TransferReply {
  return { status: 'rejected', code, error, reason };
}

/**
 * This node's place (0 first) among the voters of group `groupId` other than `lost`, in an
 * order drawn from the group id so that groups spread their first candidates over the nodes;
 * -1 when this node is not such a voter.
 */
export function failoverTurn(
  groupId: string,
  voters: readonly string[],
  lost: string,
  self: string,
): number {
  const rank = (name: string) => createHash('sha256').update(`${groupId}/${name}`).digest('hex');
  const order = voters
    .filter((name) => name !== lost)
    .map((name) => ({ name, rank: rank(name) }))
    .sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
  return order.findIndex((entry) => entry.name === self);
}

/**
 * Returns the part of FAILOVER_IDLE_SPREAD_MS that group `groupId` waits, drawn from its id: the
 * idle groups spread over the window, and every survivor waits the same for one group, so their
 * turns stay a step apart.
 */
export function idleFailoverOffsetMs(groupId: string): number {
  const digest = createHash('sha256').update(`idle failover/${groupId}`).digest();
  return digest.readUInt32BE(0) % FAILOVER_IDLE_SPREAD_MS;
}

/** A deferred failover campaign of an idle group (see FAILOVER_IDLE_AFTER_MS). */
interface DeferredFailover {
  readonly timer: NodeJS.Timeout;
  /** This node's turn in the failover, as a delay from the start of the turns. */
  readonly turnDelayMs: number;
  readonly survivors: number;
}

/** A failover this node takes part in: the lost leader's node and the voters then. */
export interface Failover {
  readonly lost: string;
  readonly voters: readonly string[];
  readonly atMs: number;
}

/**
 * Returns the delay in ms before `self` campaigns after rejecting `candidate`'s pre-vote in
 * `failover`. The turns start again at once without the candidate, in the same order: the
 * first of the others gets 0 ms, and no two get the same delay. Null when `self` and
 * `candidate` are the same or either is not a remaining voter.
 */
export function campaignDelayAfterRejecting(
  groupId: string,
  failover: Pick<Failover, 'lost' | 'voters'>,
  self: string,
  candidate: string,
): number | null {
  const mine = failoverTurn(groupId, failover.voters, failover.lost, self);
  const theirs = failoverTurn(groupId, failover.voters, failover.lost, candidate);
  if (mine < 0 || theirs < 0 || mine === theirs) return null;
  return (mine > theirs ? mine - 1 : mine) * FAILOVER_CAMPAIGN_STEP_MS;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Derives the cluster's uuid from the cluster secret, so every node reports the same one. */
function clusterUuidOf(secret: Buffer): string {
  return createHashHex(Buffer.concat([Buffer.from('divan cluster uuid\0'), secret])).slice(0, 32);
}

function createHashHex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
