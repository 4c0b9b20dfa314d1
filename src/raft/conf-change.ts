/**
 * Membership changes: the steps a driver may request, how the leader turns them into the next
 * configuration, and the encoding of configuration entries. Pure functions, no Raft state.
 *
 * A configuration entry (`type: 'config'`) carries the whole membership that takes effect at
 * its index, not a difference from the previous one. A node therefore finds its configuration
 * from the last configuration entry in its log alone: on restart, after a snapshot install, and
 * after a truncation removed newer entries, with nothing to replay.
 *
 * A change of voters goes through joint consensus: the leader appends the joint configuration
 * (new voters in `voters`, old voters in `votersOutgoing`), and once that commits it appends the
 * new configuration alone. A change that only adds or removes learners touches no quorum, so it
 * is appended as one simple configuration.
 *
 * Entry data, format version 1, is UTF-8 JSON with exactly these members:
 *
 *   {"version":1,"voters":["n1","n2"],"learners":["n4"],"votersOutgoing":["n1","n2","n3"]}
 *
 * Node ids are non-empty strings. No id appears twice in one list, `voters` is not empty, and
 * `voters` and `learners` are disjoint; a learner may also be in `votersOutgoing` while a
 * demotion is in its joint phase.
 */
import { assert, RaftInvariantError } from './assert.js';
import type { Membership, NodeId } from './types.js';
import { NO_NODE } from './types.js';

/** The format version written into configuration entries. */
export const CONFIG_FORMAT_VERSION = 1;

/**
 * One step of a membership change. Steps apply in order, so `remove_voter` then `add_learner`
 * of the same node demotes it.
 *
 * - `add_voter`: a node that is not a member becomes a voter.
 * - `remove_voter`: a voter leaves.
 * - `add_learner`: a node that is not a member becomes a learner.
 * - `promote_learner`: a learner becomes a voter; the leader checks that it has caught up.
 * - `remove_learner`: a learner leaves.
 */
export type ConfChangeType =
  | 'add_voter'
  | 'remove_voter'
  | 'add_learner'
  | 'promote_learner'
  | 'remove_learner';

export interface ConfChangeStep {
  readonly type: ConfChangeType;
  readonly node: NodeId;
}

/** The next configuration for a change, or why the change does not fit the membership. */
export type ConfChangePlan =
  | { readonly ok: true; readonly membership: Membership }
  | { readonly ok: false; readonly detail: string };

/** The members a change should end with: what `stepsToTarget` moves to. */
export interface MembershipTarget {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/**
 * Returns the configuration that `steps` lead to from the incoming voters and the learners of
 * `current`: a joint configuration when the voters change, a simple one otherwise. The caller
 * makes sure that `current` is not joint.
 */
export function planConfChange(
  current: Membership,
  steps: readonly ConfChangeStep[],
): ConfChangePlan {
  if (steps.length === 0) return { ok: false, detail: 'a change needs at least one step' };
  const voters = [...current.voters];
  const learners = [...current.learners];
  for (const step of steps) {
    const problem = applyStep(voters, learners, step);
    if (problem !== null) return { ok: false, detail: problem };
  }
  if (voters.length === 0) return { ok: false, detail: 'a change must leave at least one voter' };
  const votersChanged = !sameMembers(voters, current.voters);
  if (!votersChanged && sameMembers(learners, current.learners)) {
    return { ok: false, detail: 'the change leaves the membership as it is' };
  }
  const votersOutgoing = votersChanged ? [...current.voters] : [];
  return { ok: true, membership: { voters, learners, votersOutgoing } };
}

/** Applies one step to the lists in place; returns why it does not fit, or null. */
function applyStep(voters: NodeId[], learners: NodeId[], step: ConfChangeStep): string | null {
  const { type, node } = step;
  if (typeof node !== 'string' || node === NO_NODE) return `${type}: the node id is empty`;
  const isVoter = voters.includes(node);
  const isLearner = learners.includes(node);
  switch (type) {
    case 'add_voter':
    case 'add_learner':
      if (isVoter) return `${type} ${node}: it is already a voter`;
      if (isLearner) return `${type} ${node}: it is already a learner`;
      (type === 'add_voter' ? voters : learners).push(node);
      return null;
    case 'remove_voter':
      if (!isVoter) return `remove_voter ${node}: it is not a voter`;
      voters.splice(voters.indexOf(node), 1);
      return null;
    case 'promote_learner':
      if (!isLearner) return `promote_learner ${node}: it is not a learner`;
      learners.splice(learners.indexOf(node), 1);
      voters.push(node);
      return null;
    case 'remove_learner':
      if (!isLearner) return `remove_learner ${node}: it is not a learner`;
      learners.splice(learners.indexOf(node), 1);
      return null;
    default:
      return `unknown step type ${JSON.stringify(type)}`;
  }
}

/** Returns the configuration that ends the joint phase of `membership`. */
export function leaveJoint(membership: Membership): Membership {
  assert(membership.votersOutgoing.length > 0, 'leaveJoint of a configuration that is not joint');
  return { voters: [...membership.voters], learners: [...membership.learners], votersOutgoing: [] };
}

/** Returns whether `membership` is a joint configuration. */
export function isJoint(membership: Membership): boolean {
  return membership.votersOutgoing.length > 0;
}

/** Returns whether `id` is a learner and votes in neither voter set. */
export function isLearner(membership: Membership, id: NodeId): boolean {
  return (
    membership.learners.includes(id) &&
    !membership.voters.includes(id) &&
    !membership.votersOutgoing.includes(id)
  );
}

/** Returns whether `id` is a voter or a learner of `membership`. */
export function isMember(membership: Membership, id: NodeId): boolean {
  return (
    membership.voters.includes(id) ||
    membership.learners.includes(id) ||
    membership.votersOutgoing.includes(id)
  );
}

/**
 * Returns the steps of one change from the incoming configuration of `current` to `target`:
 * learners in the target's voters are promoted, other new voters are added, voters that the
 * target keeps as learners are demoted. Empty when `current` already has the target's members.
 * Throws when the target is not a valid membership (no voters, or a node in both lists).
 */
export function stepsToTarget(current: Membership, target: MembershipTarget): ConfChangeStep[] {
  assert(target.voters.length > 0, 'a target membership needs at least one voter');
  for (const id of target.voters) {
    assert(!target.learners.includes(id), () => `target lists ${id} as voter and learner`);
  }
  const steps: ConfChangeStep[] = [];
  for (const node of target.voters) {
    if (current.voters.includes(node)) continue;
    const type = current.learners.includes(node) ? 'promote_learner' : 'add_voter';
    steps.push({ type, node });
  }
  for (const node of current.voters) {
    if (target.voters.includes(node)) continue;
    steps.push({ type: 'remove_voter', node });
    if (target.learners.includes(node)) steps.push({ type: 'add_learner', node });
  }
  for (const node of target.learners) {
    if (current.voters.includes(node) || current.learners.includes(node)) continue;
    steps.push({ type: 'add_learner', node });
  }
  for (const node of current.learners) {
    if (target.learners.includes(node) || target.voters.includes(node)) continue;
    steps.push({ type: 'remove_learner', node });
  }
  return steps;
}

function sameMembers(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

// -----------------------------------------------------------------------------------------
// Entry data

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });
const FORMAT_KEYS = ['version', 'voters', 'learners', 'votersOutgoing'];

/** Encodes `membership` as the data of a configuration entry (format version 1). */
export function encodeMembership(membership: Membership): Uint8Array {
  const problem = membershipProblem(membership);
  assert(problem === null, () => `cannot encode an invalid membership: ${problem}`);
  const { voters, learners, votersOutgoing } = membership;
  return encoder.encode(
    JSON.stringify({ version: CONFIG_FORMAT_VERSION, voters, learners, votersOutgoing }),
  );
}

/**
 * Decodes the data of a configuration entry. Throws a RaftInvariantError when the data is not a
 * valid configuration: the core wrote every configuration entry itself, so a bad one means a
 * corrupted log or a bug, never an expected outcome.
 */
export function decodeMembership(data: Uint8Array): Membership {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(data));
  } catch (error) {
    throw new RaftInvariantError(`configuration entry is not UTF-8 JSON: ${String(error)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RaftInvariantError('configuration entry is not a JSON object');
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length !== FORMAT_KEYS.length || !FORMAT_KEYS.every((key) => key in record)) {
    throw new RaftInvariantError(`configuration entry has members ${keys.join(', ')}`);
  }
  if (record.version !== CONFIG_FORMAT_VERSION) {
    throw new RaftInvariantError(`configuration entry has unknown version ${record.version}`);
  }
  const membership = {
    voters: idList(record.voters, 'voters'),
    learners: idList(record.learners, 'learners'),
    votersOutgoing: idList(record.votersOutgoing, 'votersOutgoing'),
  };
  const problem = membershipProblem(membership);
  if (problem !== null) throw new RaftInvariantError(`invalid configuration entry: ${problem}`);
  return membership;
}

function idList(value: unknown, name: string): NodeId[] {
  if (!Array.isArray(value) || !value.every((id) => typeof id === 'string')) {
    throw new RaftInvariantError(`configuration entry: ${name} is not a list of node ids`);
  }
  return value as NodeId[];
}

/** Returns why `membership` cannot be a configuration entry, or null. */
export function membershipProblem(membership: Membership): string | null {
  const { voters, learners, votersOutgoing } = membership;
  if (voters.length === 0) return 'it has no voters';
  for (const [name, ids] of [
    ['voters', voters],
    ['learners', learners],
    ['votersOutgoing', votersOutgoing],
  ] as const) {
    if (ids.some((id) => id === NO_NODE)) return `${name} contains an empty node id`;
    if (new Set(ids).size !== ids.length) return `${name} lists a node twice`;
  }
  const both = voters.find((id) => learners.includes(id));
  if (both !== undefined) return `${both} is both a voter and a learner`;
  return null;
}
