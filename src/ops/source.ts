/**
 * The interface between the operations routes (`_prometheus`, `_stats`, `_system`, `_config`,
 * `/_divan/cluster`) and the node below the HTTP layer. The cluster layer implements `OpsSource`
 * (node-ops.ts); an `HttpBackend` without one (the HTTP tests' memory backend) serves none of
 * these routes.
 *
 * Shapes here are the JSON the routes send, so their members use CouchDB's snake_case.
 */
import type { NodeMetrics } from './metrics.js';
import type { SnapshotTask } from './transfers.js';

/** One Raft group in this node's view. `open` is false when the file is closed to save memory. */
export interface LocalGroupRow {
  readonly db: string;
  readonly open: boolean;
  readonly role?: string;
  readonly term?: number;
  /** The leader this node has learned of, or null. */
  readonly leader?: string | null;
  readonly commit_index?: number;
  readonly applied_index?: number;
  readonly last_index?: number;
  readonly voters?: readonly string[];
  readonly learners?: readonly string[];
  /** On a leader only: each other member's match index. */
  readonly match_index?: Readonly<Record<string, number>>;
}

/** A peer connection in this node's view. */
export interface LocalPeer {
  readonly name: string;
  readonly connected: boolean;
  /** Smoothed ping round-trip time in ms, or null before the first pong. */
  readonly rtt_ms: number | null;
}

/** `GET /_divan/cluster?local=true`: one node's own view, one page of databases. */
export interface LocalStatus {
  readonly node: string;
  readonly uptime_s: number;
  readonly peers: readonly LocalPeer[];
  /** Totals over every open group on this node, not only the page. */
  readonly summary: {
    readonly groups_open: number;
    readonly groups_led: number;
    readonly groups_without_leader: number;
    readonly max_apply_lag: number;
    /** Snapshot transfers this node is receiving now. */
    readonly snapshot_transfers: number;
  };
  readonly transfers: readonly SnapshotTask[];
  readonly databases: {
    readonly total: number;
    readonly skip: number;
    readonly rows: readonly LocalGroupRow[];
  };
}

/** The page of databases a status request selects. `_dbs` is always the first row. */
export interface StatusPage {
  readonly skip: number;
  readonly limit: number;
}

/** Configuration sections as CouchDB's `_config` returns them: every value a string. */
export type ConfigSections = Readonly<Record<string, Readonly<Record<string, string>>>>;

/** A member node and where its HTTP API listens (empty when not recorded yet). */
export interface MemberAddress {
  readonly name: string;
  readonly http: string;
}

export interface OpsSource {
  readonly nodeName: string;
  readonly metrics: NodeMetrics;
  localStatus(page: StatusPage): LocalStatus;
  /** The member nodes with their HTTP addresses, this node included. */
  members(): readonly MemberAddress[];
  config(): ConfigSections;
  /** This node's tasks for `GET /_active_tasks`: the snapshot transfers it is receiving. */
  activeTasks(): readonly SnapshotTask[];
}
