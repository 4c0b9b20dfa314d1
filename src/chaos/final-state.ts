/**
 * The state the nodes hold once the faults have healed: waiting for the replicas to converge,
 * comparing them byte for byte, and reading every document's winning revision, token and
 * revision history for the checks.
 *
 * Reads here are stale reads (`stable=false`) of each node's own replica: after convergence
 * every node has applied the same entries, and the point is to see each replica, not the
 * leader's view.
 */
import type { ChaosCluster, ChaosNode, RaftStatus } from './cluster.js';

const POLL_MS = 250;
const READ_TIMEOUT_MS = 15_000;
/** Document reads in flight at once while reading a final state. */
const READ_CONCURRENCY = 8;

/** A document as a replica holds it at the end. */
export interface FinalDocument {
  readonly rev: string;
  readonly deleted: boolean;
  /** The winner's token, or null when it is deleted. */
  readonly token: string | null;
  /** Every revision id of the winner's branch, the winner included. */
  readonly history: ReadonlySet<string>;
}

export interface Convergence {
  readonly converged: boolean;
  readonly elapsedMs: number;
  /** The statuses last seen, for the report when it did not converge. */
  readonly detail: string;
}

/**
 * Waits until the replicas are settled: one leader that every node follows in one term, no
 * entry pending on the leader, and every node at the same applied index (its commit index)
 * with the same hash chain, twice in a row. Without the leader condition a cluster that just
 * restarted looks settled until its new leader appends its first entry.
 */
export async function waitForConvergence(
  cluster: ChaosCluster,
  db: string,
  timeoutMs: number,
): Promise<Convergence> {
  const started = Date.now();
  let detail = '';
  let previous: string | null = null;
  while (Date.now() - started < timeoutMs) {
    const statuses = await Promise.all(cluster.nodes.map((node) => cluster.raftStatus(node, db)));
    detail = statuses.map((status, i) => describeStatus(cluster.nodes[i]!, status)).join('; ');
    const settled = settledPoint(statuses);
    if (settled !== null && settled === previous) {
      return { converged: true, elapsedMs: Date.now() - started, detail };
    }
    previous = settled;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  return { converged: false, elapsedMs: Date.now() - started, detail };
}

/** The settled point (term, leader, applied index, chain) the statuses agree on, or null. */
function settledPoint(statuses: readonly (RaftStatus | null)[]): string | null {
  if (statuses.some((status) => status === null)) return null;
  const all = statuses as RaftStatus[];
  const leaders = all.filter((status) => status.role === 'leader');
  if (leaders.length !== 1) return null;
  const leader = leaders[0]!;
  if (leader.last_index !== leader.commit_index) return null;
  const agree = all.every(
    (status) =>
      status.term === leader.term &&
      status.leader === leader.node &&
      status.commit_index === status.applied_index &&
      status.applied_index === leader.applied_index &&
      status.hash_chain === leader.hash_chain,
  );
  return agree
    ? `${leader.term}/${leader.node}/${leader.applied_index}/${leader.hash_chain}`
    : null;
}

function describeStatus(node: ChaosNode, status: RaftStatus | null): string {
  if (status === null) return `${node.name}: no answer (${node.state})`;
  return `${node.name}: ${status.role} term ${status.term} commit ${status.commit_index} applied ${status.applied_index} chain ${status.hash_chain.slice(0, 12)}`;
}

/** What must be identical on every replica: documents, changes feed and hash chain. */
export interface ReplicaFingerprint {
  readonly allDocs: string;
  readonly changes: string;
  readonly hashChain: string;
}

/** Reads a node's fingerprint; throws when the node does not answer. */
export async function fingerprint(
  cluster: ChaosCluster,
  node: ChaosNode,
  db: string,
): Promise<ReplicaFingerprint> {
  const allDocs = await readText(cluster, node, `/${db}/_all_docs?stable=false&include_docs=true`);
  const changes = await readText(cluster, node, `/${db}/_changes?stable=false&style=all_docs`);
  const status = await cluster.raftStatus(node, db);
  if (status === null) throw new Error(`${node.name} did not return its Raft status`);
  return { allDocs, changes, hashChain: status.hash_chain };
}

/** Compares every node's fingerprint with the first node's; returns the differences. */
export async function compareReplicas(cluster: ChaosCluster, db: string): Promise<string[]> {
  const prints = await Promise.all(cluster.nodes.map((node) => fingerprint(cluster, node, db)));
  const reference = prints[0]!;
  const differences: string[] = [];
  prints.forEach((print, i) => {
    const name = cluster.nodes[i]!.name;
    if (print.allDocs !== reference.allDocs)
      differences.push(`${name}: _all_docs differs from ${cluster.nodes[0]!.name}`);
    if (print.changes !== reference.changes)
      differences.push(`${name}: _changes differs from ${cluster.nodes[0]!.name}`);
    if (print.hashChain !== reference.hashChain)
      differences.push(
        `${name}: hash_chain ${print.hashChain} differs from ${reference.hashChain}`,
      );
  });
  return differences;
}

interface ChangesRow {
  readonly id: string;
  readonly changes: readonly { readonly rev: string }[];
  readonly deleted?: boolean;
}

/** Reads every document of a replica with its winner's revision history. */
export async function readFinalState(
  cluster: ChaosCluster,
  node: ChaosNode,
  db: string,
): Promise<Map<string, FinalDocument>> {
  const changes = JSON.parse(await readText(cluster, node, `/${db}/_changes?stable=false`)) as {
    results: ChangesRow[];
  };
  const state = new Map<string, FinalDocument>();
  const rows = [...changes.results];
  const worker = async () => {
    for (let row = rows.shift(); row !== undefined; row = rows.shift()) {
      state.set(row.id, await readDocument(cluster, node, db, row));
    }
  };
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));
  return new Map([...state].sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function readDocument(
  cluster: ChaosCluster,
  node: ChaosNode,
  db: string,
  row: ChangesRow,
): Promise<FinalDocument> {
  const rev = row.changes[0]!.rev;
  const path = `/${db}/${encodeURIComponent(row.id)}?rev=${encodeURIComponent(rev)}&revs=true&stable=false`;
  const doc = JSON.parse(await readText(cluster, node, path)) as {
    v?: string;
    _revisions: { start: number; ids: string[] };
  };
  const history = new Set(doc._revisions.ids.map((id, i) => `${doc._revisions.start - i}-${id}`));
  const deleted = row.deleted === true;
  return { rev, deleted, token: deleted ? null : (doc.v ?? null), history };
}

async function readText(cluster: ChaosCluster, node: ChaosNode, path: string): Promise<string> {
  const outcome = await cluster.http.send(node.httpPort, 'GET', path, undefined, READ_TIMEOUT_MS);
  if (outcome.kind !== 'response')
    throw new Error(`GET ${path} on ${node.name} failed: ${outcome.code}`);
  if (outcome.status !== 200) {
    throw new Error(
      `GET ${path} on ${node.name} returned ${outcome.status}: ${outcome.body.slice(0, 200)}`,
    );
  }
  return outcome.body;
}

/** Describes how two final states differ, document by document (at most `limit` lines). */
export function diffStates(
  before: ReadonlyMap<string, FinalDocument>,
  after: ReadonlyMap<string, FinalDocument>,
  limit: number,
): string[] {
  const lines: string[] = [];
  const keys = new Set([...before.keys(), ...after.keys()]);
  for (const key of [...keys].sort()) {
    const a = before.get(key);
    const b = after.get(key);
    const same =
      a !== undefined &&
      b !== undefined &&
      a.rev === b.rev &&
      a.deleted === b.deleted &&
      a.token === b.token;
    if (same) continue;
    lines.push(`${key}: ${describeDocument(a)} became ${describeDocument(b)}`);
    if (lines.length >= limit) break;
  }
  return lines;
}

function describeDocument(document: FinalDocument | undefined): string {
  if (document === undefined) return 'absent';
  return `${document.rev}${document.deleted ? ' (deleted)' : ` ${document.token}`}`;
}
