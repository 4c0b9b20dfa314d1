/**
 * What the HTTP layer needs from the node below it, as TypeScript interfaces only. The node
 * (src/cluster) implements `HttpBackend`; the HTTP layer never reaches past it.
 *
 * The split of work:
 * - The HTTP layer parses and validates requests (JSON bytes, ids, query parameters), fixes
 *   anything random (generated document ids) before a write is proposed, and shapes every
 *   response: document rendering with `_revisions`, `_conflicts` and the like, `_all_docs`
 *   paging, `_changes` filters and layouts, `_revs_diff` and `_bulk_get` results. It does this
 *   with the pure functions of src/document over the revision trees the backend returns.
 * - The backend owns databases, consistency and durability: it lists, creates and deletes
 *   databases, opens read snapshots (linearizable or stale), applies writes through Raft and
 *   reports their outcome, and waits for changes.
 *
 * Reads go through a `DatabaseSnapshot`: one consistent view of one database (the
 * copy-on-write trees at one set of roots), read synchronously, so a request that reads many
 * documents pays for one ReadIndex round, not one per document. Callers `close()` every
 * snapshot they open.
 *
 * Document bodies cross this interface as bytes: a stored body is the minified JSON object
 * without its special `_` members (see src/document/document.ts), never parsed here.
 *
 * Sequences are opaque strings chosen by the backend. They must not contain `,` or `}`,
 * because nano's `changesReader` extracts `last_seq` from a `_changes` body with a regular
 * expression. The HTTP layer only passes them back and forth.
 *
 * Failures: a backend call rejects with a `CouchError` for expected outcomes (`dbNotFound`,
 * `unknownOutcome` and `unavailable` with status 503, `invalid_since_seq`, ...); anything
 * else is a bug and becomes a 500.
 */
import type { AttachmentMeta, WriteAttachment } from '../document/attachments.js';
import type { DocKind } from '../document/doc-id.js';
import type { DocumentWrite } from '../document/document.js';
import type { Rev } from '../document/rev.js';
import type { RevLeafValue, RevTree } from '../document/rev-tree.js';
import type { WriteAuthorization } from '../security/access.js';

export type { WriteAuthorization };

import type { OpsSource } from '../ops/source.js';

/**
 * `linearizable` (the default) reads state that includes every write acknowledged before the
 * read began, on any node; `stale` (`stable=false` or `stale=ok`) reads the local replica at
 * once.
 */
export type Consistency = 'linearizable' | 'stale';

/** An update sequence, opaque to clients and to the HTTP layer. */
export type Seq = string;

/** Facts about the cluster that `GET /` reports. */
export interface ServerIdentity {
  /** The cluster's uuid: 32 lowercase hex digits, stable across restarts. */
  readonly uuid: string;
}

/** `GET /{db}` facts the backend knows; the HTTP layer adds CouchDB's fixed members. */
export interface DatabaseInfo {
  readonly docCount: number;
  readonly docDelCount: number;
  readonly updateSeq: Seq;
  readonly purgeSeq: Seq;
  /** Bytes: the whole file, the documents' JSON, and the live data in the file. */
  readonly sizes: { readonly file: number; readonly external: number; readonly active: number };
  /** CouchDB's cluster parameters: q shards (always 1 here), n replicas, w and r quorums. */
  readonly cluster: {
    readonly q: number;
    readonly n: number;
    readonly w: number;
    readonly r: number;
  };
  /** True while this replica's file is being compacted. */
  readonly compactRunning: boolean;
}

/** A stored attachment of a leaf revision, with a reader of its stored bytes. */
export interface StoredAttachment extends AttachmentMeta {
  /** Reads the stored (possibly gzipped) bytes `[start, end)`, synchronously. */
  read(start: number, end: number): Buffer;
}

/** What a leaf revision stores besides its place in the tree. */
export interface LeafContent {
  /** True when the leaf is a deletion (a tombstone). */
  readonly deleted: boolean;
  /** The stored body: a minified JSON object without special members. */
  readonly body: Buffer;
  /** The revision's attachments in document order; empty when it has none. */
  readonly attachments: readonly StoredAttachment[];
}

/** A normal or design document as a snapshot holds it. */
export interface DocumentRecord {
  readonly id: string;
  /** The sequence of the document's latest update (`_local_seq`, its `_changes` row). */
  readonly seq: Seq;
  /** The winning revision (see src/document/rev-tree-query.ts for the rule). */
  readonly winner: Rev;
  /** True when every leaf is deleted. */
  readonly deleted: boolean;
  /** The full revision tree, with interior nodes; decoded on demand. */
  tree(): RevTree<RevLeafValue>;
  /** The stored content of a leaf revision, or null when `rev` is not a leaf. */
  content(rev: Rev): LeafContent | null;
}

/** A `_local/` document: no revision tree, a `0-N` revision. */
export interface LocalDocumentRecord {
  readonly id: string;
  /** `0-N`. */
  readonly rev: string;
  readonly body: Buffer;
}

/** A key range over document ids, in the bytewise order of their UTF-8 encoding. */
export interface IdRange {
  /** First id (last when descending); unbounded when absent. */
  readonly startId?: string;
  /** Last id (first when descending); unbounded when absent. */
  readonly endId?: string;
  /** Whether `endId` itself is included. */
  readonly inclusiveEnd: boolean;
  readonly descending: boolean;
}

/** Where a `_changes` feed starts. */
export type ChangesSince =
  | { readonly kind: 'start' }
  | { readonly kind: 'now' }
  /** After a sequence a client got from this database (`last_seq` or a row's `seq`). */
  | { readonly kind: 'after'; readonly seq: Seq };

/**
 * One consistent, read-only view of one database. Reads are synchronous. The view stays
 * readable until `close()`, which the caller must call exactly once.
 */
export interface DatabaseSnapshot {
  info(): DatabaseInfo;
  /** A normal or design document (deleted ones included), or null when never written. */
  document(id: string): DocumentRecord | null;
  /** Normal and design documents in id order, deleted ones excluded (`_all_docs`). */
  documents(range: IdRange): Iterable<DocumentRecord>;
  /** How many documents `documents(range)` would yield (`_all_docs`'s `offset`). */
  countDocuments(range: IdRange): number;
  /**
   * The sequence `since` names: the database's first sequence for `start` (CouchDB's `0`), its
   * update sequence for `now`, and the given one for `after`. Rejects a sequence this
   * database cannot have produced with `bad_request` / `invalid_since_seq`.
   */
  resolveSince(since: ChangesSince): Seq;
  /**
   * Every document whose latest update comes after `since` (ascending) or, when descending,
   * every document from the newest down to just after `since`, one record per document, in
   * sequence order. Deleted documents included.
   */
  changes(since: Seq, descending: boolean): Iterable<DocumentRecord>;
  /** How many documents `changes` would still yield after the one at `seq`, same direction. */
  pendingAfter(seq: Seq, descending: boolean): number;
  localDocument(id: string): LocalDocumentRecord | null;
  /** The `_security` object as raw JSON (`{}` when never set). */
  security(): Buffer;
  revsLimit(): number;
  /** How many purge requests the database keeps (`_purged_infos_limit`). */
  purgedInfosLimit(): number;
  /** The purge requests the database keeps, oldest first (`_purged_infos`). */
  purgedInfos(): PurgedInfo[];
  close(): void;
}

/** One kept purge request. */
export interface PurgedInfo {
  readonly id: string;
  readonly revs: readonly string[];
}

/**
 * A document to write: a parsed document whose id is known and whose `_attachments` are ready
 * to store (src/document/attachments.ts).
 */
export interface WriteDocument extends Omit<DocumentWrite, 'attachments'> {
  readonly id: string;
  readonly kind: DocKind;
  /** The attachments of the new revision, in order; null when the document names none. */
  readonly attachments: readonly WriteAttachment[] | null;
}

/** `POST /{db}/_purge`: revisions to purge per document, each request with a fixed uuid. */
export interface PurgeRequest {
  readonly docs: readonly {
    readonly id: string;
    /** Revisions as the client sent them, `N-<id>`. */
    readonly revs: readonly string[];
    /** 32 lowercase hex digits, chosen before the purge is proposed. */
    readonly uuid: string;
  }[];
}

/** The revisions a purge removed from one document, in request order. */
export interface PurgeResult {
  readonly id: string;
  readonly purged: readonly string[];
}

/** A running task as `_active_tasks` lists it. */
export type ActiveTask = CompactionTask | SnapshotTransferTask;

/** A snapshot a node is receiving, already in `_active_tasks`' JSON shape (`json`). */
export interface SnapshotTransferTask {
  readonly type: 'raft_snapshot';
  readonly database: string;
  /** Unix seconds. */
  readonly startedOn: number;
  readonly json: Readonly<Record<string, unknown>>;
}

/** A running compaction as `_active_tasks` lists it. */
export interface CompactionTask {
  readonly type: 'database_compaction';
  /** Unique per task on this node. */
  readonly taskId: number;
  readonly node: string;
  readonly database: string;
  /** `document_copy`, `docid_copy`, `catch_up` or `swap`. */
  readonly phase: string;
  /** True from the second copy round on (writes landed during the first). */
  readonly retry: boolean;
  readonly changesDone: number;
  readonly totalChanges: number;
  /** Unix seconds. */
  readonly startedOn: number;
  readonly updatedOn: number;
}
export interface WriteRequest {
  readonly docs: readonly WriteDocument[];
  /**
   * True for interactive edits (the default). False for replication (`new_edits=false`): each
   * document's `_revisions` history is merged into its tree as given.
   */
  readonly newEdits: boolean;
}

/** The outcome of one document of a write, in request order. */
export type WriteResult =
  | { readonly ok: true; readonly id: string; readonly rev: string }
  /** `error` is a CouchDB error such as `conflict` or `forbidden`. */
  | { readonly ok: false; readonly id: string; readonly error: string; readonly reason: string };

/** The roles of a Raft node as `_raft` reports them. */
export type RaftRole = 'leader' | 'follower' | 'candidate' | 'pre_candidate';

/** One Raft group on the answering node, with the member names `_raft` uses on the wire. */
export interface RaftGroupStatus {
  readonly node: string;
  readonly role: RaftRole;
  readonly term: number;
  /** The leader this node knows of, or null. */
  readonly leader: string | null;
  readonly commit_index: number;
  readonly applied_index: number;
  readonly first_index: number;
  readonly last_index: number;
  readonly members: readonly string[];
  /** The outcome hash chain after `applied_index`, hex. */
  readonly hash_chain: string;
  readonly snapshots_sent: number;
  readonly snapshots_received: number;
  /** On the leader only: each follower's replication progress. */
  readonly progress?: Readonly<
    Record<string, { readonly match_index: number; readonly next_index: number }>
  >;
}

/** `GET /_node/_local/_raft`: the `_dbs` group's fields, plus each hosted group's role. */
export interface NodeRaftStatus extends RaftGroupStatus {
  readonly groups: readonly { readonly db: string; readonly role: RaftRole }[];
}

/** Node facts for `/_node/_local/_system` that only the node knows. */
export interface NodeStats {
  readonly openDatabaseFiles: number;
  readonly raftGroups: number;
  /** Node-specific counters (transport, Raft messages by type), shown under `divan`. */
  readonly details: Readonly<Record<string, unknown>>;
}

/** A member node of the cluster, as `_dbs` records it. */
export interface ClusterNode {
  readonly name: string;
  /** Address other nodes connect to. */
  readonly peer: string;
  /** HTTP address, or empty when the node has not recorded it yet. */
  readonly http: string;
}

/** `GET /_membership`. */
export interface Membership {
  /** Every member node, learners still catching up included. */
  readonly all_nodes: readonly string[];
  /** The nodes that are voters of every group this node hosts. */
  readonly cluster_nodes: readonly string[];
}

/** The file fault layers of a node that runs with fault control on (test-only). */
export interface FaultSettings {
  /** Each fsync waits this long first, in ms; absent when the layer is not installed. */
  readonly fsync_delay_ms?: number;
  /** Every later fsync fails; absent when the layer is not installed. */
  readonly fsync_fail?: boolean;
}

export interface HttpBackend {
  /** Metrics, status and configuration for the operations routes; absent, they answer 404. */
  readonly ops?: OpsSource;
  server(): ServerIdentity;
  /** Every database name, sorted bytewise, system databases included. */
  listDatabases(consistency: Consistency): Promise<string[]>;
  /** Creates a database whose name the HTTP layer validated. */
  createDatabase(name: string): Promise<'created' | 'exists'>;
  deleteDatabase(name: string): Promise<'deleted' | 'missing'>;
  /** Opens a snapshot; rejects with `dbNotFound` when the database does not exist. */
  snapshot(db: string, consistency: Consistency): Promise<DatabaseSnapshot>;
  /**
   * Applies documents through Raft; resolves once applied, with one result per document.
   * With `authorization`, the group's leader first checks the caller against the `_security`
   * it has applied and rejects with 401 or 403; without it, the node itself is writing.
   */
  write(
    db: string,
    request: WriteRequest,
    authorization?: WriteAuthorization,
  ): Promise<WriteResult[]>;
  /** Sets `_revs_limit`; `authorization` as for `write`. */
  setRevsLimit(db: string, limit: number, authorization?: WriteAuthorization): Promise<void>;
  /** Stores a validated `_security` object (raw JSON); `authorization` as for `write`. */
  setSecurity(db: string, security: Buffer, authorization?: WriteAuthorization): Promise<void>;
  /*
   * The four methods below are optional so that a backend can grow them one at a time: a
   * route whose method is missing answers 501 `not_implemented`. The engine gives each one a
   * command (`purgeCommand`, `purged_infos_limit`, `compact`) or a file method
   * (`DatabaseFile.compaction`).
   */
  /** Purges revisions through Raft; resolves once applied, with one result per document. */
  purge?(db: string, request: PurgeRequest): Promise<PurgeResult[]>;
  /** Sets how many purge requests the database keeps (a positive integer), through Raft. */
  setPurgedInfosLimit?(db: string, limit: number): Promise<void>;
  /**
   * Starts compacting `db` on every node that holds it; resolves once the request is applied,
   * before any compaction finishes.
   */
  compact?(db: string): Promise<void>;
  /** The compactions running on this node. */
  activeTasks?(): Promise<ActiveTask[]>;
  /**
   * Resolves true once the local replica of `db` has a change after `since`, false after
   * `timeoutMs` or when `signal` aborts, whichever comes first. Rejects with `dbNotFound`
   * when the database is deleted meanwhile.
   */
  waitForChange(db: string, since: Seq, timeoutMs: number, signal: AbortSignal): Promise<boolean>;
  raftStatus(db: string): Promise<RaftGroupStatus>;
  /**
   * Moves the leadership of `db`'s group to node `to` and resolves with the new leader; rejects
   * with a CouchError when `to` cannot lead (not a voter, lagging) or the move timed out.
   */
  transferLeader(db: string, to: string): Promise<string>;
  nodeRaftStatus(): Promise<NodeRaftStatus>;
  nodeStats(): Promise<NodeStats>;
  membership(): Promise<Membership>;
  /** The member nodes with their addresses. */
  listNodes(): Promise<ClusterNode[]>;
  /**
   * Adds (or updates the addresses of) a member node; `present` when it is already a member
   * with these addresses. Every group then adds it as a learner and promotes it once caught up.
   */
  addNode(node: ClusterNode): Promise<'added' | 'present'>;
  /** Removes a member node from every group; `missing` when it is not a member. */
  removeNode(name: string): Promise<'removed' | 'missing'>;
  /**
   * Reads, and with `change` updates, the node's file fault layers; null when the node does
   * not run with fault control, so the route does not exist.
   */
  faults(change: FaultSettings | null): Promise<FaultSettings | null>;
}
