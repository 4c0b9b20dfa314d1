/**
 * `clusterStatus`: the whole cluster as `GET /_divan/cluster` reports it, merged from every
 * member's own view (`GET /_divan/cluster?local=true`, fetched with the caller's credentials).
 *
 * Per node: whether it returned its view, its peer connection and round-trip time as seen from
 * the node that serves the request, the groups it leads and its largest apply lag. Per database on the page: the
 * leader (the member that reports itself leader at the highest term), its term and commit
 * index, and each member's role and applied index. A database whose leader is unknown or
 * down is `leaderless`. A member is `down` when it did not reply. It is `lagging` when its log
 * lacks more than `LAG_THRESHOLD_ENTRIES` of the entries up to the leader's commit index, by
 * the leader's match index for it (its applied index when the leader gives none). A follower
 * applies committed entries up to a tick late by design, so its applied index alone does not
 * make it lagging.
 *
 * A member's view is fetched at about the same time as the others, not atomically, so a row
 * can mix states a few milliseconds apart.
 */
import { httpRequest as request } from '../util/http-client.js';
import type { LocalGroupRow, LocalStatus, OpsSource, StatusPage } from './source.js';

/**
 * A member whose log lacks more committed entries than this is reported as lagging. Under a
 * heavy load a healthy follower lacks the appends in flight, a few dozen entries.
 */
export const LAG_THRESHOLD_ENTRIES = 100;
/** How long the serving node waits for each other member's view. */
const MEMBER_TIMEOUT_MS = 2_000;

export type MemberState = 'ok' | 'lagging' | 'down' | 'closed' | 'unknown';

export interface NodeStatus {
  readonly name: string;
  readonly http: string;
  readonly reachable: boolean;
  /** The reason the node's view could not be fetched. */
  readonly error?: string;
  /** The serving node's peer connection to it; null for the serving node itself. */
  readonly connected: boolean | null;
  readonly rtt_ms: number | null;
  readonly uptime_s?: number;
  readonly groups_open?: number;
  readonly groups_led?: number;
  readonly groups_without_leader?: number;
  readonly max_apply_lag?: number;
  readonly snapshot_transfers?: number;
}

export interface MemberStatus {
  readonly state: MemberState;
  readonly role: string | null;
  readonly term?: number;
  readonly applied_index?: number;
  /** The leader's commit index minus this member's applied index. */
  readonly lag?: number;
}

export interface DatabaseStatus {
  readonly db: string;
  readonly leader: string | null;
  readonly leaderless: boolean;
  readonly term: number | null;
  readonly commit_index: number | null;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly members: Readonly<Record<string, MemberStatus>>;
  readonly lagging: readonly string[];
}

export interface ClusterStatus {
  readonly node: string;
  readonly nodes: readonly NodeStatus[];
  readonly databases: {
    readonly total: number;
    readonly skip: number;
    readonly limit: number;
    readonly rows: readonly DatabaseStatus[];
  };
  /** Databases on this page without a live leader. */
  readonly leaderless: number;
}

/** One member's view, or why it could not be fetched. */
export type MemberView =
  | { readonly name: string; readonly http: string; readonly status: LocalStatus }
  | { readonly name: string; readonly http: string; readonly error: string };

/** Fetches every member's view (this node's without a request) and merges them. */
export async function clusterStatus(
  ops: OpsSource,
  page: StatusPage,
  headers: Readonly<Record<string, string>>,
): Promise<ClusterStatus> {
  const views = await Promise.all(
    ops.members().map(async (member): Promise<MemberView> => {
      if (member.name === ops.nodeName) {
        return { ...member, status: ops.localStatus(page) };
      }
      if (member.http === '') return { ...member, error: 'HTTP address not recorded yet' };
      try {
        return { ...member, status: await fetchView(member.http, page, headers) };
      } catch (error) {
        return { ...member, error: (error as Error).message };
      }
    }),
  );
  return mergeViews(ops.nodeName, views, page);
}

async function fetchView(
  address: string,
  page: StatusPage,
  headers: Readonly<Record<string, string>>,
): Promise<LocalStatus> {
  const query = `local=true&skip=${page.skip}&limit=${page.limit}`;
  const response = await request(`http://${address}/_divan/cluster?${query}`, {
    headers,
    headersTimeout: MEMBER_TIMEOUT_MS,
    bodyTimeout: MEMBER_TIMEOUT_MS,
  });
  const body = await response.body.text();
  if (response.statusCode !== 200) {
    throw new Error(`GET /_divan/cluster returned ${response.statusCode}: ${body.trim()}`);
  }
  return JSON.parse(body) as LocalStatus;
}

/** Merges member views into the cluster status; exported for tests. */
export function mergeViews(
  self: string,
  views: readonly MemberView[],
  page: StatusPage,
): ClusterStatus {
  const own = views.find((view) => view.name === self);
  const ownPeers = own !== undefined && 'status' in own ? own.status.peers : [];
  const nodes: NodeStatus[] = views.map((view) => {
    const peer = ownPeers.find((candidate) => candidate.name === view.name);
    const base = {
      name: view.name,
      http: view.http,
      connected: view.name === self ? null : (peer?.connected ?? false),
      rtt_ms: peer?.rtt_ms ?? null,
    };
    if ('error' in view) return { ...base, reachable: false, error: view.error };
    return { ...base, reachable: true, uptime_s: view.status.uptime_s, ...view.status.summary };
  });

  const reachable = views.filter(
    (view): view is MemberView & { status: LocalStatus } => 'status' in view,
  );
  const names = databaseNames(reachable);
  const rows = names.map((db) => databaseStatus(db, views, reachable));
  const total = Math.max(0, ...reachable.map((view) => view.status.databases.total));
  return {
    node: self,
    nodes,
    databases: { total, skip: page.skip, limit: page.limit, rows },
    leaderless: rows.filter((row) => row.leaderless).length,
  };
}

/** Lists the databases on the page in the order the members list them (`_dbs` first). */
function databaseNames(views: readonly { status: LocalStatus }[]): string[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const view of views) {
    for (const row of view.status.databases.rows) {
      if (seen.has(row.db)) continue;
      seen.add(row.db);
      names.push(row.db);
    }
  }
  return names;
}

function databaseStatus(
  db: string,
  views: readonly MemberView[],
  reachable: readonly { name: string; status: LocalStatus }[],
): DatabaseStatus {
  const rows = new Map<string, LocalGroupRow>();
  for (const view of reachable) {
    const row = view.status.databases.rows.find((candidate) => candidate.db === db);
    if (row !== undefined) rows.set(view.name, row);
  }
  let leaderRow: LocalGroupRow | undefined;
  let leader: string | null = null;
  for (const [name, row] of rows) {
    if (row.role !== 'leader') continue;
    if (leaderRow === undefined || (row.term ?? 0) > (leaderRow.term ?? 0)) {
      leaderRow = row;
      leader = name;
    }
  }
  const reference = leaderRow ?? [...rows.values()].find((row) => row.open);
  const voters = reference?.voters ?? [];
  const learners = reference?.learners ?? [];
  const memberNames = new Set([...voters, ...learners]);
  if (memberNames.size === 0) {
    for (const view of views) memberNames.add(view.name);
  }

  const commit = leaderRow?.commit_index ?? null;
  const members: Record<string, MemberStatus> = {};
  const lagging: string[] = [];
  for (const name of [...memberNames].sort()) {
    const match = name === leader ? commit : leaderRow?.match_index?.[name];
    const status = memberStatus(rows.get(name), views, name, commit, match);
    members[name] = status;
    if (status.state === 'lagging' || status.state === 'down') lagging.push(name);
  }
  return {
    db,
    leader,
    leaderless: leader === null,
    term: leaderRow?.term ?? reference?.term ?? null,
    commit_index: commit,
    voters,
    learners,
    members,
    lagging,
  };
}

function memberStatus(
  row: LocalGroupRow | undefined,
  views: readonly MemberView[],
  name: string,
  commit: number | null,
  match: number | null | undefined,
): MemberStatus {
  const view = views.find((candidate) => candidate.name === name);
  if (view === undefined || 'error' in view) return { state: 'down', role: null };
  if (row === undefined) return { state: 'unknown', role: null };
  if (!row.open) return { state: 'closed', role: null };
  const applied = row.applied_index ?? 0;
  // Entries the leader's match index puts in its log count as caught up, because it applies them
  // at its next tick. Its own last index would also count entries that conflict with the leader's.
  const inLog = Math.max(applied, Math.min(match ?? applied, commit ?? 0));
  const lag = commit === null ? undefined : Math.max(0, commit - inLog);
  const state: MemberState = lag !== undefined && lag > LAG_THRESHOLD_ENTRIES ? 'lagging' : 'ok';
  return {
    state,
    role: row.role ?? null,
    ...(row.term === undefined ? {} : { term: row.term }),
    applied_index: applied,
    ...(lag === undefined ? {} : { lag }),
  };
}
