/**
 * `npm run bench -- raft [--proposals N]`: the Raft core alone. Three RawNodes run in one process
 * with in-memory storage and synchronous message passing. It measures proposals committed and
 * applied per second (counted when the leader applies them) with 1 and with 256 proposals
 * outstanding, and microseconds per proposal. No peer: the figures are a regression guard for
 * the core's hot path, not a cluster's throughput (no disk, no network, no encoding).
 */
import { performance } from 'node:perf_hooks';
import type { Message, RawNode as RawNodeType } from '../src/raft/index.js';
import { MemoryStorage, membershipOf, RawNode } from '../src/raft/index.js';
import { BenchReport, progress } from './report.js';

const NODE_IDS = ['n1', 'n2', 'n3'];
const PAYLOAD_BYTES = 128;
const DEFAULT_PROPOSALS = 300_000;
const SINGLE_OUTSTANDING_PROPOSALS = 30_000;
const WARM_UP_PROPOSALS = 20_000;
const OUTSTANDING_LEVELS = [1, 256];

interface BenchNode {
  readonly raw: RawNodeType;
  readonly storage: MemoryStorage;
  inbox: Message[];
}

class InProcessCluster {
  readonly nodes = new Map<string, BenchNode>();
  applied = 0;

  constructor() {
    let seed = 1;
    for (const id of NODE_IDS) {
      const storage = new MemoryStorage(membershipOf(NODE_IDS));
      const offset = seed++;
      const raw = new RawNode(
        { id, membership: membershipOf(NODE_IDS), random: () => (offset * 0.137) % 1 },
        storage,
      );
      this.nodes.set(id, { raw, storage, inbox: [] });
    }
    this.node('n1').raw.campaign();
    while (this.node('n1').raw.role !== 'leader') this.cycle();
    for (let i = 0; i < 10; i++) this.cycle();
    this.applied = 0;
  }

  node(id: string): BenchNode {
    return this.nodes.get(id)!;
  }

  /** Runs one round: every node persists and sends its Readies, then steps its inbox. */
  cycle(): void {
    const leader = this.node('n1');
    for (const node of this.nodes.values()) {
      const raw = node.raw;
      while (raw.hasReady()) {
        const ready = raw.ready();
        node.storage.append(ready.entries);
        if (ready.hardState !== null) node.storage.setHardState(ready.hardState);
        for (const m of ready.messages) this.node(m.to).inbox.push(m);
        for (const m of ready.messagesAfterPersist) this.node(m.to).inbox.push(m);
        if (node === leader) this.applied += ready.committedEntries.length;
        raw.advance(ready);
      }
    }
    for (const node of this.nodes.values()) {
      const inbox = node.inbox;
      node.inbox = [];
      for (const m of inbox) node.raw.step(m);
    }
  }
}

/** Runs `total` proposals keeping `outstanding` in flight; returns elapsed milliseconds. */
function run(cluster: InProcessCluster, total: number, outstanding: number): number {
  const leader = cluster.node('n1').raw;
  const payload = new Uint8Array(PAYLOAD_BYTES);
  const start = performance.now();
  let proposed = 0;
  const appliedAtStart = cluster.applied;
  while (cluster.applied - appliedAtStart < total) {
    const inFlight = proposed - (cluster.applied - appliedAtStart);
    for (let i = inFlight; i < outstanding && proposed < total; i++) {
      const result = leader.propose(payload);
      if (!result.ok) throw new Error(`proposal rejected: ${result.reason}`);
      proposed++;
    }
    cluster.cycle();
  }
  return performance.now() - start;
}

function parseProposals(args: string[]): number {
  const at = args.indexOf('--proposals');
  if (at === -1) return DEFAULT_PROPOSALS;
  const value = Number(args[at + 1]);
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`--proposals expects a positive integer, got ${args[at + 1]}`);
  }
  return value;
}

export async function main(args: string[]): Promise<void> {
  const proposals = parseProposals(args);
  const report = new BenchReport('raft');
  for (const outstanding of OUTSTANDING_LEVELS) {
    const cluster = new InProcessCluster();
    // The no-op counts as applied, so the measured totals exclude the leader's election.
    run(cluster, WARM_UP_PROPOSALS, outstanding);
    const total = outstanding === 1 ? Math.min(proposals, SINGLE_OUTSTANDING_PROPOSALS) : proposals;
    progress(`raft: ${total} proposals with ${outstanding} outstanding`);
    const elapsedMs = run(cluster, total, outstanding);
    const scenario = `raft 3 nodes in-process, ${outstanding} outstanding`;
    report.measure(
      scenario,
      'proposals committed and applied',
      'proposals/s',
      total / (elapsedMs / 1000),
    );
    report.measure(scenario, 'time per proposal', 'µs', (elapsedMs * 1000) / total);
  }
  report.save({ payloadBytes: PAYLOAD_BYTES, proposals });
}
