/**
 * `divan status URL`: prints the Raft state of the cluster's groups, as the node at URL sees
 * them: the `_dbs` group, then one row per database (leader, term, commit and applied index).
 *
 * `--watch SECONDS` redraws the whole cluster from `GET /_divan/cluster` every SECONDS until
 * interrupted (or `--times N` redraws): each node with its state, round-trip time and groups
 * led, and each database's leader and every member's applied index, with lagging and down
 * members and leaderless databases marked.
 */
import { request } from 'undici';
import { targetOf } from './remote.js';

interface GroupStatus {
  node: string;
  role: string;
  term: number;
  leader: string | null;
  commit_index: number;
  applied_index: number;
  last_index: number;
  members: string[];
}

/** Databases listed at most; a larger cluster is summarised by the count. */
const MAX_ROWS = 200;

export async function runStatus(url: string): Promise<number> {
  const { base, headers } = targetOf(url);
  const get = async <T>(path: string): Promise<T> => {
    const response = await request(new URL(path, base), { headers });
    const body = await response.body.text();
    if (response.statusCode !== 200) {
      throw new Error(`GET ${path} returned ${response.statusCode}: ${body.trim()}`);
    }
    return JSON.parse(body) as T;
  };

  try {
    const system = await get<GroupStatus>('/_node/_local/_raft');
    const databases = await get<string[]>('/_all_dbs');
    const rows: string[][] = [['database', 'leader', 'term', 'commit', 'applied', 'members']];
    rows.push(row('_dbs', system));
    for (const db of databases.slice(0, MAX_ROWS)) {
      rows.push(row(db, await get<GroupStatus>(`/${encodeURIComponent(db)}/_raft`)));
    }
    console.log(`node ${system.node} (${base.origin})`);
    console.log(formatTable(rows));
    if (databases.length > MAX_ROWS) {
      console.log(`... and ${databases.length - MAX_ROWS} more databases`);
    }
    return 0;
  } catch (error) {
    console.error(`divan status: ${(error as Error).message}`);
    return 1;
  }
}

function row(name: string, status: GroupStatus): string[] {
  return [
    name,
    status.leader ?? '(none)',
    String(status.term),
    String(status.commit_index),
    String(status.applied_index),
    status.members.join(','),
  ];
}

function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((cells) => cells[column]!.length)),
  );
  return rows
    .map((cells) =>
      cells
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export interface WatchOptions {
  /** Seconds between two redraws. */
  readonly intervalSeconds: number;
  /** Redraws before returning; unlimited when absent. */
  readonly times?: number;
}

interface ClusterNode {
  name: string;
  reachable: boolean;
  connected: boolean | null;
  rtt_ms: number | null;
  groups_led?: number;
  max_apply_lag?: number;
  error?: string;
}

interface ClusterDatabase {
  db: string;
  leader: string | null;
  leaderless: boolean;
  term: number | null;
  commit_index: number | null;
  members: Record<string, { state: string; applied_index?: number }>;
}

interface ClusterView {
  node: string;
  nodes: ClusterNode[];
  databases: { total: number; rows: ClusterDatabase[] };
  leaderless: number;
}

const CLEAR_SCREEN = '\x1b[2J\x1b[H';
const MS_PER_SECOND = 1000;
/** Databases shown per redraw; the rest are counted. */
const WATCH_ROWS = 50;

/** Redraws the cluster's status until SIGINT or `times` redraws; returns the exit code. */
export async function watchStatus(url: string, options: WatchOptions): Promise<number> {
  const { base, headers } = targetOf(url);
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  try {
    for (
      let drawn = 0;
      !stopped && (options.times === undefined || drawn < options.times);
      drawn++
    ) {
      if (drawn > 0) await pause(options.intervalSeconds * MS_PER_SECOND);
      const text = await drawCluster(base, headers);
      process.stdout.write(process.stdout.isTTY ? `${CLEAR_SCREEN}${text}\n` : `${text}\n\n`);
    }
    return 0;
  } catch (error) {
    console.error(`divan status: ${(error as Error).message}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', stop);
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function drawCluster(base: URL, headers: Record<string, string>): Promise<string> {
  const response = await request(new URL(`/_divan/cluster?limit=${WATCH_ROWS}`, base), {
    headers,
  });
  const body = await response.body.text();
  if (response.statusCode !== 200) {
    throw new Error(`GET /_divan/cluster returned ${response.statusCode}: ${body.trim()}`);
  }
  const view = JSON.parse(body) as ClusterView;

  const up = view.nodes.filter((node) => node.reachable).length;
  const lines = [
    `${new Date().toISOString()}  seen by ${view.node}: ${up} of ${view.nodes.length} nodes up, ` +
      `${view.leaderless} database(s) without a leader`,
    '',
    formatTable([
      ['node', 'state', 'rtt', 'groups led', 'max apply lag'],
      ...view.nodes.map((node) => [
        node.name,
        nodeState(node),
        node.rtt_ms === null ? '-' : `${node.rtt_ms.toFixed(2)} ms`,
        String(node.groups_led ?? '-'),
        String(node.max_apply_lag ?? '-'),
      ]),
    ]),
    '',
  ];

  const names = view.nodes.map((node) => node.name);
  const rows = view.databases.rows.map((row) => [
    row.db,
    row.leader ?? 'NONE',
    String(row.term ?? '-'),
    String(row.commit_index ?? '-'),
    ...names.map((name) => memberCell(row.members[name])),
  ]);
  lines.push(formatTable([['database', 'leader', 'term', 'commit', ...names], ...rows]));
  const shown = view.databases.rows.length - 1;
  if (view.databases.total > shown) {
    lines.push(`... and ${view.databases.total - shown} more databases`);
  }
  return lines.join('\n');
}

function nodeState(node: ClusterNode): string {
  if (!node.reachable) return `DOWN (${node.error ?? 'no answer'})`;
  if (node.connected === null) return 'up (this node)';
  return node.connected ? 'up' : 'up, peer link down';
}

function memberCell(member: { state: string; applied_index?: number } | undefined): string {
  if (member === undefined) return '';
  const applied = member.applied_index === undefined ? '' : String(member.applied_index);
  if (member.state === 'ok') return applied;
  return applied === '' ? member.state.toUpperCase() : `${applied} ${member.state.toUpperCase()}`;
}
