/**
 * Watches the Raft status of the run's database on every running node (`GET /{db}/_raft`)
 * and records each leader it learns of, so the report can count leader changes; the nemesis
 * asks it who leads now when it aims a fault at the leader.
 *
 * It only reads status; a node that is stopped or slow to answer is skipped for that round.
 */
import type { ChaosCluster, ChaosNode, RaftStatus } from './cluster.js';

const POLL_MS = 300;

export interface LeaderSighting {
  readonly at: number;
  readonly term: number;
  readonly leader: string;
}

export class LeaderObserver {
  readonly sightings: LeaderSighting[] = [];
  #timer: NodeJS.Timeout | null = null;
  #polling = false;

  constructor(
    readonly cluster: ChaosCluster,
    readonly db: string,
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.#poll(), POLL_MS);
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Distinct (term, leader) pairs seen, minus the first: the leader changes of the run. */
  get leaderChanges(): number {
    return Math.max(0, this.sightings.length - 1);
  }

  /** Asks every running node now; returns the leader of the highest term any node reports. */
  async findLeader(): Promise<ChaosNode | null> {
    const statuses = await this.#statuses();
    let best: RaftStatus | null = null;
    for (const status of statuses) {
      if (status.role !== 'leader') continue;
      if (best === null || status.term > best.term) best = status;
    }
    return best === null ? null : this.cluster.node(best.node);
  }

  async #poll(): Promise<void> {
    if (this.#polling) return;
    this.#polling = true;
    try {
      await this.#statuses();
    } finally {
      this.#polling = false;
    }
  }

  async #statuses(): Promise<RaftStatus[]> {
    const results = await Promise.all(
      this.cluster.runningNodes().map((node) => this.cluster.raftStatus(node, this.db)),
    );
    const statuses = results.filter((status): status is RaftStatus => status !== null);
    for (const status of statuses) this.#note(status);
    return statuses;
  }

  #note(status: RaftStatus): void {
    if (status.leader === null) return;
    const seen = this.sightings.some(
      (sighting) => sighting.term === status.term && sighting.leader === status.leader,
    );
    if (seen) return;
    this.sightings.push({ at: this.cluster.clock(), term: status.term, leader: status.leader });
    this.sightings.sort((a, b) => a.term - b.term);
  }
}
