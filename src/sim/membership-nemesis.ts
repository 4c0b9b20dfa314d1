/**
 * The membership nemesis: mixes membership changes, learner promotions and leadership transfers
 * into a run's fault schedule, over the cluster's pool of node ids.
 *
 * At random intervals it requests one of these from the current leader:
 *
 * - adding a learner, or a voter directly;
 * - promoting a learner, usually one that caught up, and sometimes one that did not, which must
 *   be rejected;
 * - removing a voter or a learner, or replacing a voter (one joint change that removes a voter
 *   and adds another);
 * - transferring leadership, usually to a voter, and sometimes to a learner or a non-member,
 *   which must be rejected.
 *
 * Now and then it proposes a second change right after the first, which must be rejected while
 * the first is in flight, and it cuts off a removed node for a while. A node that joins for the
 * first time starts with an empty disk. A removed node keeps running with its disk, and the
 * other faults keep hitting it.
 */
import type { ConfChangeResult, ConfChangeStep, NodeId } from '../raft/index.js';
import { isLearner, isMember } from '../raft/index.js';
import type { SimCluster } from './cluster.js';
import type { SimNode } from './node.js';
import type { SimRandom } from './random.js';

const ACTION_INTERVAL_MS: readonly [number, number] = [150, 600];
const TRANSFER_RATE = 0.2;
const REMOVED_ISOLATION_RATE = 0.1;
/** Probability of proposing another change right after one was accepted. */
const SECOND_CHANGE_RATE = 0.3;
/** Probability of promoting a learner that has not caught up (the leader must reject it). */
const EARLY_PROMOTION_RATE = 0.2;
const ISOLATION_MS: readonly [number, number] = [100, 1500];
/** Voters are not removed below this count, so that crashes still leave a quorum now and then. */
const MIN_VOTERS = 2;

type ChangeKind =
  | 'add_learner'
  | 'promote'
  | 'remove_voter'
  | 'remove_learner'
  | 'replace'
  | 'add_voter';

/** Relative weights of the change kinds, when each is possible. */
const CHANGE_WEIGHTS: Record<ChangeKind, number> = {
  add_learner: 3,
  promote: 3,
  remove_voter: 2,
  remove_learner: 1,
  replace: 1,
  add_voter: 1,
};

export class MembershipNemesis {
  constructor(
    readonly cluster: SimCluster,
    readonly stopAtMs: number,
    readonly random: SimRandom,
  ) {}

  start(): void {
    this.#scheduleNext();
  }

  #scheduleNext(): void {
    const [min, max] = ACTION_INTERVAL_MS;
    this.cluster.schedule(this.random.int(min, max), () => {
      if (this.cluster.now >= this.stopAtMs) return;
      this.#act();
      this.#scheduleNext();
    });
  }

  #act(): void {
    const leader = this.cluster.leader();
    if (leader?.raw == null) return;
    const roll = this.random.next();
    if (roll < TRANSFER_RATE) this.#transfer(leader);
    else if (roll < TRANSFER_RATE + REMOVED_ISOLATION_RATE) this.#isolateRemovedNode(leader);
    else if (this.#change(leader) && this.random.chance(SECOND_CHANGE_RATE)) this.#change(leader);
  }

  /** Proposes one random change on `leader`; returns whether it was accepted. */
  #change(leader: SimNode): boolean {
    const raw = leader.raw;
    if (raw === null) return false;
    const steps = this.#chooseSteps(leader);
    if (steps === null) return false;
    for (const step of steps) {
      if (step.type === 'add_learner' || step.type === 'add_voter')
        this.cluster.provision(step.node);
    }
    let result: ConfChangeResult | undefined;
    leader.act((node) => {
      result = node.proposeConfChange(steps);
    });
    if (result?.ok !== true) return false;
    const promotes = steps.some((step) => step.type === 'promote_learner');
    this.cluster.countFault(promotes ? 'learner promotion' : 'membership change');
    return true;
  }

  #chooseSteps(leader: SimNode): ConfChangeStep[] | null {
    const membership = leader.raw!.membership;
    const outsiders = this.cluster.nodes
      .map((node) => node.id)
      .filter((id) => !isMember(membership, id));
    const learners = membership.learners.filter((id) => isLearner(membership, id));
    const voters = membership.voters;
    const possible: ChangeKind[] = [];
    if (outsiders.length > 0) possible.push('add_learner', 'add_voter');
    if (learners.length > 0) possible.push('promote', 'remove_learner');
    if (voters.length > MIN_VOTERS) possible.push('remove_voter');
    if (outsiders.length > 0 && voters.length > 1) possible.push('replace');
    if (possible.length === 0) return null;
    const kind = this.#pickWeighted(possible);
    switch (kind) {
      case 'add_learner':
        return [{ type: 'add_learner', node: this.random.pick(outsiders) }];
      case 'add_voter':
        return [{ type: 'add_voter', node: this.random.pick(outsiders) }];
      case 'promote':
        return [{ type: 'promote_learner', node: this.#learnerToPromote(leader, learners) }];
      case 'remove_learner':
        return [{ type: 'remove_learner', node: this.random.pick(learners) }];
      case 'remove_voter':
        return [{ type: 'remove_voter', node: this.random.pick(voters) }];
      case 'replace':
        return [
          { type: 'remove_voter', node: this.random.pick(voters) },
          { type: 'add_voter', node: this.random.pick(outsiders) },
        ];
    }
  }

  #learnerToPromote(leader: SimNode, learners: readonly NodeId[]): NodeId {
    const ready = leader.raw!.promotableLearners();
    if (ready.length === 0 || this.random.chance(EARLY_PROMOTION_RATE)) {
      return this.random.pick(learners);
    }
    return this.random.pick(ready);
  }

  #pickWeighted(kinds: readonly ChangeKind[]): ChangeKind {
    const total = kinds.reduce((sum, kind) => sum + CHANGE_WEIGHTS[kind], 0);
    let roll = this.random.next() * total;
    for (const kind of kinds) {
      roll -= CHANGE_WEIGHTS[kind];
      if (roll < 0) return kind;
    }
    return kinds[kinds.length - 1]!;
  }

  #transfer(leader: SimNode): void {
    const membership = leader.raw!.membership;
    const others = membership.voters.filter((id) => id !== leader.id);
    const roll = this.random.next();
    let target: NodeId;
    if (roll < 0.7 && others.length > 0) target = this.random.pick(others);
    else if (roll < 0.85 && membership.learners.length > 0) {
      target = this.random.pick(membership.learners);
    } else target = this.random.pick(this.cluster.nodes).id;
    let ok = false;
    leader.act((node) => {
      ok = node.transferLeader(target).ok;
    });
    if (ok) this.cluster.countFault('leadership transfer');
  }

  #isolateRemovedNode(leader: SimNode): void {
    const membership = leader.raw!.membership;
    const removed = this.cluster
      .provisionedNodes()
      .filter((node) => node.up && !isMember(membership, node.id));
    if (removed.length === 0) return;
    const node = this.random.pick(removed);
    this.cluster.countFault('removed node isolation');
    this.cluster.isolate(node.id);
    const [min, max] = ISOLATION_MS;
    this.cluster.schedule(this.random.int(min, max), () => this.cluster.heal());
  }
}
