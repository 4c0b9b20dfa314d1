/**
 * `nodeStats` and `systemFacts`: the bodies of `GET /_node/{node}/_stats` and `_system` in
 * CouchDB 3.x's shapes.
 *
 * `_stats` nests groups of leaves, each `{value, type, desc}`. A counter or gauge value is a
 * number. A histogram value is a `WindowedSamples` summary in milliseconds over the last 10 s,
 * as CouchDB's `[stats] interval` gives it. Only the leaves Divan measures are present;
 * the `divan` group holds the Raft figures.
 *
 * `_system` keeps CouchDB's `uptime` and `memory`, the latter with the V8 figures that come
 * closest to the Erlang ones (`processes` is the JavaScript heap, `binary` the memory of
 * ArrayBuffers, where Buffers live), and reports the event loop's delay where CouchDB reports
 * its run queues, since a stalled event loop is what delays Raft heartbeats.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { MetricObject, MetricValue } from 'prom-client';
import type { NodeMetrics } from './metrics.js';
import type { HistogramSummary } from './window.js';

type LeafType = 'counter' | 'gauge' | 'histogram';

export interface StatLeaf {
  readonly value: number | HistogramSummary;
  readonly type: LeafType;
  readonly desc: string;
}

export interface StatGroup {
  readonly [name: string]: StatLeaf | StatGroup;
}

const NANOSECONDS_PER_MILLISECOND = 1e6;
const EVENT_LOOP_RESOLUTION_MS = 10;

/** Event-loop delay since the process started, sampled every 10 ms. */
const eventLoopDelay = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
eventLoopDelay.enable();

/** Builds the whole `_stats` tree from the node's metrics (refreshed first). */
export async function nodeStats(metrics: NodeMetrics): Promise<StatGroup> {
  metrics.refresh();
  const byName = new Map<string, MetricObject & { values: MetricValue<string>[] }>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    byName.set(metric.name, metric as MetricObject & { values: MetricValue<string>[] });
  }
  const total = (name: string): number => {
    const metric = byName.get(name);
    return metric === undefined ? 0 : metric.values.reduce((sum, item) => sum + item.value, 0);
  };
  const leaf = (name: string, type: LeafType, desc?: string): StatLeaf => ({
    value: total(name),
    type,
    desc: desc ?? byName.get(name)?.help ?? '',
  });
  const labelled = (name: string, label: string): StatGroup => {
    const group: Record<string, StatLeaf> = {};
    const metric = byName.get(name);
    for (const item of metric?.values ?? []) {
      const key = String(item.labels[label]);
      group[key] = { value: item.value, type: 'counter', desc: metric?.help ?? '' };
    }
    return group;
  };

  return {
    couchdb: {
      httpd_request_methods: labelled('couchdb_httpd_request_methods', 'method'),
      httpd_status_codes: labelled('couchdb_httpd_status_codes', 'code'),
      httpd: {
        requests: leaf('couchdb_httpd_requests_total', 'counter'),
        bulk_requests: leaf('couchdb_httpd_bulk_requests_total', 'counter'),
        clients_requesting_changes: leaf('couchdb_httpd_clients_requesting_changes', 'gauge'),
      },
      request_time: {
        value: metrics.requestTimes.summary(),
        type: 'histogram',
        desc: 'HTTP request duration in milliseconds over the last 10 s',
      },
      open_databases: leaf('couchdb_open_databases', 'gauge'),
      database_reads: leaf('couchdb_database_reads_total', 'counter'),
      database_writes: leaf('couchdb_database_writes_total', 'counter'),
      document_writes: leaf('couchdb_document_writes_total', 'counter'),
      commits: leaf('couchdb_commits_total', 'counter'),
    },
    fsync: {
      count: leaf('couchdb_fsync_count_total', 'counter'),
      time: {
        value: metrics.fsyncTimes.summary(),
        type: 'histogram',
        desc: 'fsync duration in milliseconds over the last 10 s',
      },
    },
    divan: {
      raft: {
        leader_changes: leaf('divan_raft_leader_changes_total', 'counter'),
        elections: leaf('divan_raft_elections_total', 'counter'),
        proposals_committed: leaf('divan_raft_proposals_committed_total', 'counter'),
        proposals_applied: leaf('divan_raft_proposals_applied_total', 'counter'),
        proposals_pending: leaf('divan_raft_proposals_pending', 'gauge'),
        proposals_failed: leaf('divan_raft_proposals_failed_total', 'counter'),
        groups_without_leader: leaf('divan_raft_groups_without_leader', 'gauge'),
        apply_lag_entries: leaf('divan_raft_apply_lag_entries', 'gauge'),
        snapshots: leaf('divan_raft_snapshots_total', 'counter'),
      },
    },
  };
}

/** Returns the part of the tree a `_stats/...` sub-path names, or null when nothing is there. */
export function statsAt(tree: StatGroup, path: readonly string[]): StatGroup | StatLeaf | null {
  let node: StatGroup | StatLeaf = tree;
  for (const name of path) {
    if (isLeaf(node) || !Object.hasOwn(node, name)) return null;
    node = (node as StatGroup)[name]!;
  }
  return node;
}

function isLeaf(node: StatGroup | StatLeaf): node is StatLeaf {
  return typeof node.type === 'string' && 'value' in node && 'desc' in node;
}

function milliseconds(nanoseconds: number): number {
  return Number.isFinite(nanoseconds) ? nanoseconds / NANOSECONDS_PER_MILLISECOND : 0;
}

/** Builds the body of `_system`, without the node-specific members the route adds. */
export function systemFacts(): Record<string, unknown> {
  const memory = process.memoryUsage();
  return {
    uptime: Math.floor(process.uptime()),
    memory: {
      other: Math.max(0, memory.rss - memory.heapTotal - memory.external),
      processes: memory.heapTotal,
      processes_used: memory.heapUsed,
      binary: memory.arrayBuffers,
      rss: memory.rss,
      heap_total: memory.heapTotal,
      heap_used: memory.heapUsed,
      external: memory.external,
      array_buffers: memory.arrayBuffers,
    },
    event_loop_delay_ms: {
      min: milliseconds(eventLoopDelay.min),
      mean: milliseconds(eventLoopDelay.mean),
      p50: milliseconds(eventLoopDelay.percentile(50)),
      p99: milliseconds(eventLoopDelay.percentile(99)),
      max: milliseconds(eventLoopDelay.max),
    },
    process_count: process.getActiveResourcesInfo().length,
    message_queues: {},
    internal_replication_jobs: 0,
  };
}
