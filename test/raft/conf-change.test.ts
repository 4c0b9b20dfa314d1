/**
 * The pure membership-change functions: the configuration entry codec, planning a change from
 * steps, and the steps to a target. Property-based, against a naive model built on sets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  type ConfChangeStep,
  type ConfChangeType,
  decodeMembership,
  encodeMembership,
  type Membership,
  membershipProblem,
  planConfChange,
  RaftInvariantError,
  stepsToTarget,
} from '../../src/raft/index.js';

const IDS = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];
const STEP_TYPES: ConfChangeType[] = [
  'add_voter',
  'remove_voter',
  'add_learner',
  'promote_learner',
  'remove_learner',
];

/** A simple (not joint) membership over the pool: each id is a voter, a learner or absent. */
const simpleMembership = fc
  .array(fc.constantFrom('voter', 'learner', 'absent'), {
    minLength: IDS.length,
    maxLength: IDS.length,
  })
  .filter((roles) => roles.includes('voter'))
  .map(
    (roles): Membership => ({
      voters: IDS.filter((_, i) => roles[i] === 'voter'),
      learners: IDS.filter((_, i) => roles[i] === 'learner'),
      votersOutgoing: [],
    }),
  );

const step = fc.record({ type: fc.constantFrom(...STEP_TYPES), node: fc.constantFrom(...IDS) });

/** Applies a step to the naive model; returns whether the set rules allow it. */
function modelApply(
  voters: Set<string>,
  learners: Set<string>,
  { type, node }: ConfChangeStep,
): boolean {
  const member = voters.has(node) || learners.has(node);
  switch (type) {
    case 'add_voter':
      if (member) return false;
      voters.add(node);
      return true;
    case 'add_learner':
      if (member) return false;
      learners.add(node);
      return true;
    case 'remove_voter':
      return voters.delete(node);
    case 'remove_learner':
      return learners.delete(node);
    case 'promote_learner':
      if (!learners.delete(node)) return false;
      voters.add(node);
      return true;
  }
}

function sorted(ids: readonly string[]): string[] {
  return [...ids].sort();
}

test('membership codec round-trips', () => {
  fc.assert(
    fc.property(simpleMembership, fc.boolean(), (membership, joint) => {
      const value: Membership = joint
        ? { ...membership, votersOutgoing: IDS.slice(0, 3) }
        : membership;
      assert.deepEqual(decodeMembership(encodeMembership(value)), value);
    }),
  );
});

test('membership codec writes the documented JSON', () => {
  const data = encodeMembership({ voters: ['n1', 'n2'], learners: ['n4'], votersOutgoing: ['n1'] });
  assert.equal(
    new TextDecoder().decode(data),
    '{"version":1,"voters":["n1","n2"],"learners":["n4"],"votersOutgoing":["n1"]}',
  );
});

test('membership decoder rejects malformed data', () => {
  const encoder = new TextEncoder();
  const bad = [
    'not json',
    '[]',
    '{"version":1,"voters":["n1"],"learners":[]}',
    '{"version":2,"voters":["n1"],"learners":[],"votersOutgoing":[]}',
    '{"version":1,"voters":[],"learners":[],"votersOutgoing":[]}',
    '{"version":1,"voters":["n1","n1"],"learners":[],"votersOutgoing":[]}',
    '{"version":1,"voters":["n1"],"learners":["n1"],"votersOutgoing":[]}',
    '{"version":1,"voters":[""],"learners":[],"votersOutgoing":[]}',
    '{"version":1,"voters":[1],"learners":[],"votersOutgoing":[]}',
    '{"version":1,"voters":["n1"],"learners":[],"votersOutgoing":[],"extra":0}',
  ];
  for (const text of bad) {
    assert.throws(() => decodeMembership(encoder.encode(text)), RaftInvariantError, text);
  }
  assert.throws(() => decodeMembership(Uint8Array.of(0xff, 0xfe)), RaftInvariantError);
});

test('planned change matches the set model', () => {
  fc.assert(
    fc.property(simpleMembership, fc.array(step, { maxLength: 6 }), (current, steps) => {
      const voters = new Set(current.voters);
      const learners = new Set(current.learners);
      const stepsValid = steps.every((each) => modelApply(voters, learners, each));
      const votersChanged =
        voters.size !== current.voters.length || current.voters.some((id) => !voters.has(id));
      const learnersChanged =
        learners.size !== current.learners.length ||
        current.learners.some((id) => !learners.has(id));
      const expectValid =
        steps.length > 0 && stepsValid && voters.size > 0 && (votersChanged || learnersChanged);
      const plan = planConfChange(current, steps);
      assert.equal(plan.ok, expectValid, plan.ok ? 'accepted' : plan.detail);
      if (!plan.ok) {
        assert.ok(plan.detail.length > 0);
        return;
      }
      assert.equal(membershipProblem(plan.membership), null);
      assert.deepEqual(sorted(plan.membership.voters), sorted([...voters]));
      assert.deepEqual(sorted(plan.membership.learners), sorted([...learners]));
      const expectedOutgoing = votersChanged ? sorted(current.voters) : [];
      assert.deepEqual(sorted(plan.membership.votersOutgoing), expectedOutgoing);
    }),
  );
});

test('steps to a target reach it in one change', () => {
  fc.assert(
    fc.property(simpleMembership, simpleMembership, (current, target) => {
      const steps = stepsToTarget(current, target);
      const plan = planConfChange(current, steps);
      const same =
        sorted(current.voters).join() === sorted(target.voters).join() &&
        sorted(current.learners).join() === sorted(target.learners).join();
      if (same) {
        assert.deepEqual(steps, []);
        return;
      }
      assert.ok(plan.ok, plan.ok ? '' : plan.detail);
      assert.deepEqual(sorted(plan.membership.voters), sorted(target.voters));
      assert.deepEqual(sorted(plan.membership.learners), sorted(target.learners));
    }),
  );
});

test('steps to a target demote a voter through the joint phase', () => {
  const current: Membership = { voters: ['n1', 'n2', 'n3'], learners: [], votersOutgoing: [] };
  const steps = stepsToTarget(current, { voters: ['n1', 'n2'], learners: ['n3'] });
  assert.deepEqual(steps, [
    { type: 'remove_voter', node: 'n3' },
    { type: 'add_learner', node: 'n3' },
  ]);
  const plan = planConfChange(current, steps);
  assert.ok(plan.ok);
  assert.deepEqual(plan.membership, {
    voters: ['n1', 'n2'],
    learners: ['n3'],
    votersOutgoing: ['n1', 'n2', 'n3'],
  });
});

test('change of learners alone is not joint', () => {
  const current: Membership = { voters: ['n1'], learners: ['n2'], votersOutgoing: [] };
  const plan = planConfChange(current, [
    { type: 'add_learner', node: 'n3' },
    { type: 'remove_learner', node: 'n2' },
  ]);
  assert.ok(plan.ok);
  assert.deepEqual(plan.membership, { voters: ['n1'], learners: ['n3'], votersOutgoing: [] });
});
