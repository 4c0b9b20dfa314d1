/**
 * `NodeOps`: the `OpsSource` of a running `DivanNode`. It reads the node's public state (open
 * groups, catalog, transport statistics) for the metrics scrape, the local cluster status and
 * the `_config` view. It changes nothing in the node.
 *
 * Groups whose file is closed (past `--max-open-databases`) are listed as `open: false`:
 * opening every database for a status page would defeat that limit.
 */
import type { DivanNode, OpenGroup } from '../cluster/node.js';
import { NO_NODE } from '../raft/index.js';
import type { NodeMetrics, NodeReadings, PeerReading } from './metrics.js';
import type {
  ConfigSections,
  LocalGroupRow,
  LocalStatus,
  MemberAddress,
  OpsSource,
  StatusPage,
} from './source.js';
import type { SnapshotTask } from './transfers.js';

/** The `_dbs` system database, listed first on every status page. */
const SYSTEM_DATABASE = '_dbs';

export class NodeOps implements OpsSource {
  constructor(readonly node: DivanNode) {
    node.metrics.setSource(() => this.readings());
  }

  get nodeName(): string {
    return this.node.config.name;
  }

  get metrics(): NodeMetrics {
    return this.node.metrics;
  }

  /** Collects the node's state for one metrics scrape. */
  readings(): NodeReadings {
    const groupsByRole: Record<string, number> = {};
    let groupsWithoutLeader = 0;
    let maxApplyLagEntries = 0;
    let pendingProposals = 0;
    for (const open of this.node.openGroups.values()) {
      const status = open.group.status();
      groupsByRole[status.role] = (groupsByRole[status.role] ?? 0) + 1;
      if (status.leader === NO_NODE) groupsWithoutLeader++;
      maxApplyLagEntries = Math.max(maxApplyLagEntries, status.commit - open.group.appliedIndex);
      pendingProposals += open.group.pendingProposals;
    }
    const transport = this.node.transport.stats();
    let snapshotsSent = 0;
    for (const count of this.node.snapshots.sent.values()) snapshotsSent += count;
    return {
      openDatabases: this.node.openGroups.size,
      databaseCount: this.node.catalog.size,
      groupsByRole,
      groupsWithoutLeader,
      maxApplyLagEntries,
      pendingProposals,
      snapshotsSent,
      messagesSent: { ...this.node.messagesSent },
      peers: this.#peers(),
      sentBytes: { control: transport.control.bytesSent, bulk: transport.bulk.bytesSent },
      receivedBytes: {
        control: transport.control.bytesReceived,
        bulk: transport.bulk.bytesReceived,
      },
      sendFailures: { ...transport.dropped },
    };
  }

  localStatus(page: StatusPage): LocalStatus {
    const names = this.node.catalog.names();
    const rows: LocalGroupRow[] = [];
    if (page.skip === 0) rows.push(groupRow(SYSTEM_DATABASE, this.node.dbs));
    for (const name of names.slice(page.skip, page.skip + page.limit)) {
      const entry = this.node.catalog.get(name);
      const open = entry === undefined ? undefined : this.node.openGroups.get(entry.uuid);
      rows.push(open === undefined ? { db: name, open: false } : groupRow(name, open));
    }

    let groupsLed = 0;
    let groupsWithoutLeader = 0;
    let maxApplyLag = 0;
    for (const open of this.node.openGroups.values()) {
      const status = open.group.status();
      if (status.role === 'leader') groupsLed++;
      if (status.leader === NO_NODE) groupsWithoutLeader++;
      maxApplyLag = Math.max(maxApplyLag, status.commit - open.group.appliedIndex);
    }
    return {
      node: this.nodeName,
      uptime_s: Math.floor(process.uptime()),
      peers: this.#peers().map((peer) => ({
        name: peer.name,
        connected: peer.connected,
        rtt_ms: peer.rttMs,
      })),
      summary: {
        groups_open: this.node.openGroups.size,
        groups_led: groupsLed,
        groups_without_leader: groupsWithoutLeader,
        max_apply_lag: maxApplyLag,
        snapshot_transfers: this.node.snapshotTransfers.size,
      },
      transfers: this.activeTasks(),
      databases: { total: names.length, skip: page.skip, rows },
    };
  }

  activeTasks(): readonly SnapshotTask[] {
    return this.node.snapshotTransfers.tasks(this.nodeName);
  }

  members(): readonly MemberAddress[] {
    const members = new Map<string, string>();
    for (const node of this.node.catalog.nodes.values()) members.set(node.name, node.http);
    const self = this.node.config.http;
    members.set(this.nodeName, `${self.host}:${self.port}`);
    return [...members].map(([name, http]) => ({ name, http })).sort(byName);
  }

  /**
   * Returns the settings this node runs with, in CouchDB's sections where CouchDB has the setting.
   * Admin password hashes are left out.
   */
  config(): ConfigSections {
    const config = this.node.config;
    return {
      couchdb: {
        uuid: this.node.clusterUuid,
        max_document_size: String(config.maxDocumentBytes),
        database_dir: config.dataDir,
        max_dbs_open: String(config.maxOpenDatabases),
      },
      chttpd: {
        bind_address: config.http.host,
        port: String(config.http.port),
        max_http_request_size: String(config.maxRequestBytes),
      },
      cluster: { q: '1', n: String(this.node.memberNames.length) },
      log: { level: process.env.DIVAN_LOG_LEVEL ?? 'info' },
      divan: {
        name: config.name,
        peer: `${config.peer.host}:${config.peer.port}`,
        log_retention_entries: String(config.logRetentionEntries),
        log_retention_bytes: String(config.logRetentionBytes),
        tick_ms: String(config.tickMs),
        write_timeout_ms: String(config.writeTimeoutMs),
      },
    };
  }

  #peers(): PeerReading[] {
    const peers = this.node.transport.stats().peers;
    return Object.entries(peers)
      .map(([name, peer]) => ({ name, connected: peer.connected, rttMs: peer.rttMs }))
      .sort(byName);
  }
}

function byName(left: { name: string }, right: { name: string }): number {
  if (left.name === right.name) return 0;
  return left.name < right.name ? -1 : 1;
}

function groupRow(db: string, open: OpenGroup): LocalGroupRow {
  const status = open.group.status();
  const matchIndex: Record<string, number> = {};
  for (const [peer, progress] of status.progress) {
    if (peer !== status.id) matchIndex[peer] = progress.match;
  }
  return {
    db,
    open: true,
    role: status.role,
    term: status.term,
    leader: status.leader === NO_NODE ? null : status.leader,
    commit_index: status.commit,
    applied_index: open.group.appliedIndex,
    last_index: status.lastIndex,
    voters: [...status.membership.voters],
    learners: [...status.membership.learners],
    ...(status.role === 'leader' ? { match_index: matchIndex } : {}),
  };
}
