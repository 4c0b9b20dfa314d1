/**
 * `NodeMetrics`: the Prometheus metrics of one node, in its own prom-client registry.
 *
 * Names follow CouchDB 3.x where CouchDB has the metric (`couchdb_httpd_request_methods`,
 * `couchdb_document_writes_total`, ...), so dashboards built for CouchDB read them, and
 * `divan_*` otherwise. Raft metrics are aggregated over every group the node hosts: a node
 * may host thousands of groups, so no metric is ever labelled by database or document.
 *
 * Two kinds of sources feed it:
 * - hooks on hot paths (HTTP requests, fsyncs, commits, Raft events) increment counters and
 *   observe histograms; each costs well under a microsecond;
 * - state that already exists elsewhere (open groups and their roles, transport counters) is
 *   read once per scrape through the `NodeReadings` source the node registers, and copied into
 *   gauges and counters then.
 *
 * Histograms are real cumulative Prometheus histograms (CouchDB exports windowed summaries
 * instead, which cannot be summed across nodes). Disk and latency buckets start at 0.1 ms and
 * double, because an fsync on a fast disk takes about 0.15 ms and a 1 ms first bucket would
 * hide it.
 *
 * What it does not do: serve HTTP (routes/metrics.ts does) or shape `_stats` (stats.ts).
 */
import {
  Counter,
  collectDefaultMetrics,
  Gauge,
  Histogram,
  type LabelValues,
  Registry,
} from 'prom-client';
import { assert } from '../util/assert.js';
import { WindowedSamples } from './window.js';

/** First bucket bound of duration histograms: 0.1 ms, in seconds. */
const FIRST_BUCKET_SECONDS = 0.0001;
const BUCKET_FACTOR = 2;
/** 17 doubling buckets from 0.1 ms reach 6.5536 s. */
const BUCKET_COUNT = 17;
export const DURATION_BUCKETS: readonly number[] = Array.from(
  { length: BUCKET_COUNT },
  (_, index) => FIRST_BUCKET_SECONDS * BUCKET_FACTOR ** index,
);
assert(DURATION_BUCKETS.at(-1)! > 6, 'duration buckets reach past an election timeout');

const MILLISECONDS_PER_SECOND = 1000;

/** The fixed set of route kinds HTTP metrics are labelled with (never a database name). */
export const ROUTE_KINDS = [
  'server',
  'database',
  'doc',
  'bulk_docs',
  'bulk_get',
  'all_docs',
  'changes',
  'find',
  'view',
  'session',
  'utils',
  'status',
  'metrics',
] as const;
export type RouteKind = (typeof ROUTE_KINDS)[number];

/** Roles a group can have on this node, as the core names them. */
export const RAFT_ROLES = ['leader', 'follower', 'candidate', 'pre_candidate'] as const;

/** The reason a proposal made on this node failed. */
export type ProposalFailure = 'not_leader' | 'timeout' | 'dropped';

/** The target of an fsync: a database file's data, or a directory after a rename or create. */
export type FsyncKind = 'file' | 'directory';

/** State the node reports once per scrape; see `NodeMetrics.setSource`. */
export interface NodeReadings {
  /** Database files open now, `_dbs` included. */
  readonly openDatabases: number;
  /** Databases the catalog lists. */
  readonly databaseCount: number;
  /** Open groups by role. */
  readonly groupsByRole: Readonly<Record<string, number>>;
  /** Open groups that know no leader. */
  readonly groupsWithoutLeader: number;
  /** The largest commit index minus applied index over the open groups. */
  readonly maxApplyLagEntries: number;
  /** Proposals appended on this node and not yet applied or failed. */
  readonly pendingProposals: number;
  /** Snapshots this node served to followers since it started. */
  readonly snapshotsSent: number;
  /** Raft messages handed to the transport since start, by message type. */
  readonly messagesSent: Readonly<Record<string, number>>;
  readonly peers: readonly PeerReading[];
  /** Bytes on the peer connections since start, by lane (`control`, `bulk`). */
  readonly sentBytes: Readonly<Record<string, number>>;
  readonly receivedBytes: Readonly<Record<string, number>>;
  /** Peer messages not sent, by reason (`notConnected`, `budget`, ...). */
  readonly sendFailures: Readonly<Record<string, number>>;
}

export interface PeerReading {
  readonly name: string;
  readonly connected: boolean;
  /** Smoothed ping round-trip time, or null before the first pong. */
  readonly rttMs: number | null;
}

/** Readings of a node that has not registered a source: nothing open, no peers. */
const EMPTY_READINGS: NodeReadings = {
  openDatabases: 0,
  databaseCount: 0,
  groupsByRole: {},
  groupsWithoutLeader: 0,
  maxApplyLagEntries: 0,
  pendingProposals: 0,
  snapshotsSent: 0,
  messagesSent: {},
  peers: [],
  sentBytes: {},
  receivedBytes: {},
  sendFailures: {},
};

/** The hooks a Raft group driver calls; `NodeMetrics` implements them. */
export interface GroupMetrics {
  /** A group on this node started an election, pre-vote or vote phase. */
  electionStarted(phase: 'prevote' | 'vote'): void;
  /** A group on this node learned of a new leader (itself or another node). */
  leaderChanged(): void;
  /** Entries reported committed by the core. */
  entriesCommitted(count: number): void;
  /** Entries applied to a database file. */
  entriesApplied(count: number): void;
  /** A proposal made on this node was applied, `seconds` after it was proposed. */
  proposalApplied(seconds: number): void;
  proposalFailed(reason: ProposalFailure): void;
  /** One database file commit became durable, `seconds` after it was staged. */
  commitDurable(seconds: number): void;
  snapshotInstalled(): void;
}

export class NodeMetrics implements GroupMetrics {
  readonly registry = new Registry();
  /** Recent request durations in ms, for `_stats`' `couchdb.request_time`. */
  readonly requestTimes = new WindowedSamples();
  /** Recent fsync durations in ms, for `_stats`' `fsync.time`. */
  readonly fsyncTimes = new WindowedSamples();

  #source: () => NodeReadings = () => EMPTY_READINGS;

  readonly requestMethods = this.#counter(
    'couchdb_httpd_request_methods',
    'HTTP requests by method',
    ['method'],
  );
  readonly statusCodes = this.#counter(
    'couchdb_httpd_status_codes',
    'HTTP responses by status code',
    ['code'],
  );
  readonly requests = this.#counter('couchdb_httpd_requests_total', 'HTTP requests');
  readonly bulkRequests = this.#counter(
    'couchdb_httpd_bulk_requests_total',
    'HTTP _bulk_docs and _bulk_get requests',
  );
  readonly requestDuration = new Histogram({
    name: 'divan_http_request_duration_seconds',
    help: 'HTTP request duration, from the request line to the last byte sent',
    labelNames: ['method', 'route'],
    buckets: [...DURATION_BUCKETS],
    registers: [this.registry],
  });
  readonly changesClients = this.#gauge(
    'couchdb_httpd_clients_requesting_changes',
    'HTTP clients reading a _changes feed now',
  );
  readonly openDatabases = this.#gauge('couchdb_open_databases', 'Database files open now');
  readonly databaseCount = this.#gauge('couchdb_database_count', 'Databases in the cluster');
  readonly documentWrites = this.#counter(
    'couchdb_document_writes_total',
    'Documents written successfully through this node',
  );
  readonly databaseWrites = this.#counter(
    'couchdb_database_writes_total',
    'Write requests to databases through this node',
  );
  readonly databaseReads = this.#counter(
    'couchdb_database_reads_total',
    'Documents read from databases on this node',
  );
  readonly fsyncCount = this.#counter('couchdb_fsync_count_total', 'fsync calls');
  readonly fsyncDuration = new Histogram({
    name: 'divan_fsync_duration_seconds',
    help: 'fsync duration, by what was synced',
    labelNames: ['kind'],
    buckets: [...DURATION_BUCKETS],
    registers: [this.registry],
  });
  readonly commits = this.#counter('couchdb_commits_total', 'Database file commits made durable');
  readonly commitDuration = new Histogram({
    name: 'divan_db_commit_duration_seconds',
    help: 'Database file commit duration, from staging to durable (write and fsync)',
    buckets: [...DURATION_BUCKETS],
    registers: [this.registry],
  });

  readonly raftGroups = this.#gauge('divan_raft_groups', 'Open Raft groups by role', ['role']);
  readonly raftGroupsWithoutLeader = this.#gauge(
    'divan_raft_groups_without_leader',
    'Open Raft groups that know no leader',
  );
  readonly raftLeaderChanges = this.#counter(
    'divan_raft_leader_changes_total',
    'Leaders learned by the groups on this node',
  );
  readonly raftElections = this.#counter(
    'divan_raft_elections_total',
    'Elections started by the groups on this node, by phase',
    ['phase'],
  );
  readonly raftCommitted = this.#counter(
    'divan_raft_proposals_committed_total',
    'Log entries committed, over every group on this node',
  );
  readonly raftApplied = this.#counter(
    'divan_raft_proposals_applied_total',
    'Log entries applied, over every group on this node',
  );
  readonly raftPending = this.#gauge(
    'divan_raft_proposals_pending',
    'Proposals appended on this node and not yet applied',
  );
  readonly raftFailed = this.#counter(
    'divan_raft_proposals_failed_total',
    'Proposals made on this node that failed, by reason',
    ['reason'],
  );
  readonly raftApplyLag = this.#gauge(
    'divan_raft_apply_lag_entries',
    'Largest commit index minus applied index over the open groups',
  );
  readonly raftCommitLatency = new Histogram({
    name: 'divan_raft_commit_latency_seconds',
    help: 'Time from proposing an entry on the leader to applying it there',
    buckets: [...DURATION_BUCKETS],
    registers: [this.registry],
  });
  readonly raftSnapshots = this.#counter(
    'divan_raft_snapshots_total',
    'Database snapshots sent to or received from peers, by direction',
    ['direction'],
  );
  readonly raftMessagesSent = this.#counter(
    'divan_raft_messages_sent_total',
    'Raft messages handed to the peer transport, by type',
    ['type'],
  );
  readonly peerConnected = this.#gauge(
    'divan_raft_peer_connected',
    '1 when the authenticated connection to the peer is open, else 0',
    ['peer'],
  );
  readonly peerRtt = this.#gauge(
    'divan_raft_peer_rtt_seconds',
    'Smoothed ping round-trip time to the peer',
    ['peer'],
  );
  readonly peerSentBytes = this.#counter(
    'divan_raft_peer_sent_bytes_total',
    'Bytes sent to peers, frame headers included, by lane',
    ['lane'],
  );
  readonly peerReceivedBytes = this.#counter(
    'divan_raft_peer_received_bytes_total',
    'Bytes received from peers, frame headers included, by lane',
    ['lane'],
  );
  readonly peerSendFailures = this.#counter(
    'divan_raft_peer_send_failures_total',
    'Peer messages not sent, by reason',
    ['reason'],
  );
  readonly uptime = this.#gauge('couchdb_uptime_seconds', 'Seconds since the process started');

  readonly #mirror = new CounterMirror();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    for (const role of RAFT_ROLES) this.raftGroups.set({ role }, 0);
    for (const phase of ['prevote', 'vote']) this.raftElections.inc({ phase }, 0);
    for (const reason of ['not_leader', 'timeout', 'dropped']) this.raftFailed.inc({ reason }, 0);
    for (const direction of ['sent', 'received']) this.raftSnapshots.inc({ direction }, 0);
    for (const kind of ['file', 'directory']) this.fsyncDuration.zero({ kind });
  }

  /** Registers the function that reports the node's state at each scrape. */
  setSource(source: () => NodeReadings): void {
    this.#source = source;
  }

  /** Refreshes every reading and returns the exposition text. */
  async exposition(): Promise<string> {
    this.refresh();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Copies the node's current state into the gauges and the counters that mirror it. */
  refresh(): void {
    const readings = this.#source();
    this.uptime.set(Math.floor(process.uptime()));
    this.openDatabases.set(readings.openDatabases);
    this.databaseCount.set(readings.databaseCount);
    for (const role of RAFT_ROLES) this.raftGroups.set({ role }, readings.groupsByRole[role] ?? 0);
    this.raftGroupsWithoutLeader.set(readings.groupsWithoutLeader);
    this.raftApplyLag.set(readings.maxApplyLagEntries);
    this.raftPending.set(readings.pendingProposals);
    this.#mirror.set(this.raftSnapshots, { direction: 'sent' }, readings.snapshotsSent);
    for (const [type, count] of Object.entries(readings.messagesSent)) {
      this.#mirror.set(this.raftMessagesSent, { type }, count);
    }
    this.peerConnected.reset();
    this.peerRtt.reset();
    for (const peer of readings.peers) {
      this.peerConnected.set({ peer: peer.name }, peer.connected ? 1 : 0);
      if (peer.rttMs !== null) {
        this.peerRtt.set({ peer: peer.name }, peer.rttMs / MILLISECONDS_PER_SECOND);
      }
    }
    for (const [lane, bytes] of Object.entries(readings.sentBytes)) {
      this.#mirror.set(this.peerSentBytes, { lane }, bytes);
    }
    for (const [lane, bytes] of Object.entries(readings.receivedBytes)) {
      this.#mirror.set(this.peerReceivedBytes, { lane }, bytes);
    }
    for (const [reason, count] of Object.entries(readings.sendFailures)) {
      this.#mirror.set(this.peerSendFailures, { reason }, count);
    }
  }

  /** Records one finished HTTP request. */
  requestFinished(method: string, status: number, route: RouteKind, seconds: number): void {
    this.requests.inc();
    this.requestMethods.inc({ method });
    this.statusCodes.inc({ code: String(status) });
    if (route === 'bulk_docs' || route === 'bulk_get') this.bulkRequests.inc();
    this.requestDuration.observe({ method, route }, seconds);
    this.requestTimes.add(seconds * MILLISECONDS_PER_SECOND);
  }

  fsyncFinished(kind: FsyncKind, seconds: number): void {
    this.fsyncCount.inc();
    this.fsyncDuration.observe({ kind }, seconds);
    this.fsyncTimes.add(seconds * MILLISECONDS_PER_SECOND);
  }

  electionStarted(phase: 'prevote' | 'vote'): void {
    this.raftElections.inc({ phase });
  }

  leaderChanged(): void {
    this.raftLeaderChanges.inc();
  }

  entriesCommitted(count: number): void {
    if (count > 0) this.raftCommitted.inc(count);
  }

  entriesApplied(count: number): void {
    if (count > 0) this.raftApplied.inc(count);
  }

  proposalApplied(seconds: number): void {
    this.raftCommitLatency.observe(seconds);
  }

  proposalFailed(reason: ProposalFailure): void {
    this.raftFailed.inc({ reason });
  }

  commitDurable(seconds: number): void {
    this.commits.inc();
    this.commitDuration.observe(seconds);
  }

  snapshotInstalled(): void {
    this.raftSnapshots.inc({ direction: 'received' });
  }

  #counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  #gauge(name: string, help: string, labelNames: string[] = []): Gauge<string> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}

/**
 * Moves counters to totals kept elsewhere (transport bytes, messages sent). prom-client
 * counters only go up by increments, so each call adds the growth since the previous one. A
 * total that went down (it never should) adds nothing.
 */
class CounterMirror {
  readonly #totals = new Map<Counter<string>, Map<string, number>>();

  set(counter: Counter<string>, labels: LabelValues<string>, total: number): void {
    let totals = this.#totals.get(counter);
    if (totals === undefined) {
      totals = new Map();
      this.#totals.set(counter, totals);
    }
    const key = JSON.stringify(labels);
    const previous = totals.get(key) ?? 0;
    if (total <= previous) return;
    counter.inc(labels, total - previous);
    totals.set(key, total);
  }
}
