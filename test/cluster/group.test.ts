/**
 * The group driver's batched follower applies (`RaftGroup`, src/cluster/group.ts), on three
 * groups in one process over real database files, with messages copied through the wire
 * encoding and delivered from immediates. The tests call `tick()` themselves, so no timer runs.
 *
 * - A follower defers committed entries to its next tick and then applies all of them in
 *   one round. With batching off it applies them as their commit index arrives.
 * - A round that brings a commit index and no entries is applied at once, as is a read on a
 *   follower, without waiting for a tick.
 * - A follower that becomes leader applies its deferred entries before anything else, and one
 *   that applies a membership change applies every deferred entry before it.
 * - A follower with `DEFERRED_APPLY_ENTRIES` deferred entries applies them without a tick.
 * - A leader that stepped down applies at once, so its waiting proposals resolve.
 * - A follower restarted with deferred entries replays them from its log.
 * - Under random proposals, ticks and reads, every read resolves with its node's applied index
 *   at or past the commit index known when the read started. After a final tick, every node has
 *   applied the same entries with the same hash chain.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { DEFERRED_APPLY_ENTRIES, type GroupFile, RaftGroup } from '../../src/cluster/group.js';
import { groupFileOf } from '../../src/cluster/node.js';
import { decodeGroupMessage, encodeGroupMessage } from '../../src/cluster/wire.js';
import { encodeCommand } from '../../src/engine/commands.js';
import { DatabaseFile } from '../../src/engine/database-file.js';
import type { AppliedEntry } from '../../src/engine/outcome.js';
import type { Message, NodeId } from '../../src/raft/index.js';
import { silentLogger } from '../../src/util/log.js';
import { doc, writeCommand } from '../engine/support.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

const NODES: readonly NodeId[] = ['n1', 'n2', 'n3'];
const GROUP = 'g';
const DEADLINE_MS = 20_000;
/** A safety net: a driver that never applies must fail a test, not hang the run. */
const TEST_OPTIONS = { timeout: 120_000 };
/** Sequential writes most tests make before they look at the followers. */
const WRITES = 5;
/** Immediates to wait for a condition before a test gives up on it. */
const MAX_TURNS = 100_000;

/** One node's group and the apply sizes of the commits its file staged. */
interface Member {
  readonly id: NodeId;
  readonly group: RaftGroup<AppliedEntry>;
  readonly file: DatabaseFile;
  readonly applyRounds: number[];
}

class Trio {
  readonly members = new Map<NodeId, Member>();
  /** Nodes whose incoming and outgoing messages are dropped. */
  readonly cut = new Set<NodeId>();
  #proposals = 0;

  private constructor(
    readonly dir: string,
    readonly batchFollowerApplies: boolean,
  ) {}

  static async open(t: TestContext, batchFollowerApplies: boolean): Promise<Trio> {
    const trio = new Trio(await tempDir(t, 'divan-group-'), batchFollowerApplies);
    for (const id of NODES) {
      const file = await DatabaseFile.create(join(trio.dir, `${id}.couch`), {
        name: 'db',
        membership: { voters: [...NODES], learners: [], votersOutgoing: [] },
      });
      trio.#start(id, file);
    }
    t.after(async () => {
      for (const member of trio.members.values()) {
        await member.group.close();
        await member.file.close();
      }
    });
    return trio;
  }

  /** Opens a trio, elects n1 and makes `writes` sequential writes through it, then settles. */
  static async withWrites(
    t: TestContext,
    batchFollowerApplies: boolean,
    writes: number,
  ): Promise<Trio> {
    const trio = await Trio.open(t, batchFollowerApplies);
    await trio.elect('n1');
    for (let i = 0; i < writes; i++) await trio.write();
    await trio.settle();
    return trio;
  }

  /** Closes `id`'s group and file, leaving its deferred entries unapplied, and opens them again. */
  async restart(id: NodeId): Promise<Member> {
    const old = this.member(id);
    await old.group.close();
    await old.file.close();
    const file = await DatabaseFile.open(join(this.dir, `${id}.couch`));
    return this.#start(id, file);
  }

  #start(id: NodeId, file: DatabaseFile): Member {
    const applyRounds: number[] = [];
    const inner = groupFileOf(file);
    const recording: GroupFile<AppliedEntry> = {
      ...inner,
      stage: (commit) => {
        if (commit.apply.length > 0) applyRounds.push(commit.apply.length);
        return inner.stage(commit);
      },
    };
    let state = NODES.indexOf(id) + 1;
    const group = new RaftGroup<AppliedEntry>({
      node: id,
      name: 'db',
      file: recording,
      send: (to, message) => this.#deliver(to, message),
      random: () => {
        state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
        return state / 2 ** 31;
      },
      logger: silentLogger,
      retentionEntries: 10_000,
      retentionBytes: 64 * 1024 * 1024,
      batchFollowerApplies: this.batchFollowerApplies,
      onFatal: (error) => {
        throw error;
      },
      installSnapshot: () => Promise.reject(new Error('no snapshots in this test')),
    });
    const member = { id, group, file, applyRounds };
    this.members.set(id, member);
    return member;
  }

  member(id: NodeId): Member {
    const member = this.members.get(id);
    assert.ok(member !== undefined, id);
    return member;
  }

  /** Elects `id` and waits until every node reports it as the leader. */
  async elect(id: NodeId): Promise<void> {
    this.member(id).group.campaign();
    await this.until(`${id} leads`, () =>
      [...this.members.values()].every((member) => member.group.status().leader === id),
    );
  }

  leader(): Member {
    const leaders = [...this.members.values()].filter(
      (member) => member.group.status().role === 'leader',
    );
    assert.equal(leaders.length, 1, 'one leader');
    return leaders[0]!;
  }

  followers(): Member[] {
    const leader = this.leader();
    return [...this.members.values()].filter((member) => member !== leader);
  }

  /** Proposes one document write on the leader and waits for its outcome there. */
  async write(): Promise<AppliedEntry> {
    const n = ++this.#proposals;
    const data = encodeCommand(writeCommand(`r${n}`, [doc(`d${n}`, { n })]));
    return this.leader().group.propose(data, Date.now() + DEADLINE_MS);
  }

  tickAll(): void {
    for (const member of this.members.values()) member.group.tick();
  }

  /** Waits, one immediate at a time, until `condition` holds. */
  async until(what: string, condition: () => boolean): Promise<void> {
    for (let turn = 0; turn < MAX_TURNS; turn++) {
      if (condition()) return;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.fail(`gave up waiting: ${what}`);
  }

  /**
   * Waits until the leader's match index shows that every reachable follower of the trio
   * stored its whole log (so its fsyncs are done) and no group has a Ready left, then lets the
   * last messages arrive.
   */
  async settle(): Promise<void> {
    await this.until('the groups settle', () => {
      const members = [...this.members.values()];
      if (members.some((member) => member.group.raw.hasReady())) return false;
      const leader = members.find((member) => member.group.status().role === 'leader');
      if (leader === undefined) return true;
      const status = leader.group.status();
      for (const [peer, progress] of status.progress) {
        if (peer === leader.id || this.cut.has(peer) || !this.members.has(peer)) continue;
        if (progress.match !== status.lastIndex) return false;
      }
      return true;
    });
    for (let turn = 0; turn < 50; turn++) await new Promise((resolve) => setImmediate(resolve));
  }

  #deliver(to: NodeId, message: Message): void {
    if (this.cut.has(to) || this.cut.has(message.from)) return;
    const wire = unpack(pack(encodeGroupMessage(GROUP, message)));
    const decoded = decodeGroupMessage(wire);
    assert.ok(decoded !== null, 'the message decodes');
    setImmediate(() => {
      if (!this.cut.has(to)) this.members.get(to)?.group.step(decoded.message);
    });
  }
}

test('follower applies at its next tick', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  const leader = trio.leader();

  for (const follower of trio.followers()) {
    // The commit index reaches a follower with the next append, so all but the last write
    // are known committed there, and none is applied yet.
    assert.ok(follower.group.status().commit >= WRITES, `${follower.id} learned the commit index`);
    assert.equal(follower.group.appliedIndex, 0, `${follower.id} deferred its applies`);
    assert.deepEqual(follower.applyRounds, []);
  }

  // Only the followers tick, so no heartbeat brings them a newer commit index meanwhile.
  const known = new Map(trio.followers().map((f) => [f.id, f.group.status().commit]));
  for (const follower of trio.followers()) follower.group.tick();
  await trio.settle();
  for (const follower of trio.followers()) {
    const commit = known.get(follower.id)!;
    assert.equal(follower.group.appliedIndex, commit, `${follower.id} applied at its tick`);
    assert.deepEqual(follower.applyRounds, [commit], `${follower.id} applied in one round`);
  }

  trio.tickAll();
  await trio.settle();
  const last = leader.group.status().commit;
  for (const follower of trio.followers()) {
    await trio.until(`${follower.id} applied everything`, () => {
      if (follower.group.appliedIndex < last) follower.group.tick();
      return follower.group.appliedIndex === last;
    });
    assert.equal(follower.group.hashChain(), leader.group.hashChain());
  }
});

test('follower applies a commit-only round at once', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  const leader = trio.member('n1');
  for (const follower of trio.followers()) assert.equal(follower.group.appliedIndex, 0);

  // The leader's tick sends the commit index it held back; no follower ticks.
  leader.group.tick();
  await trio.settle();
  const commit = leader.group.status().commit;
  for (const follower of trio.followers()) {
    assert.equal(follower.group.appliedIndex, commit, `${follower.id} applied at once`);
  }
});

test('unbatched follower applies on commit', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, false, WRITES);
  for (const follower of trio.followers()) {
    assert.equal(
      follower.group.appliedIndex,
      follower.group.status().commit,
      `${follower.id} applied without a tick`,
    );
    assert.ok(follower.applyRounds.length >= 4, `${follower.id}: ${follower.applyRounds}`);
  }
});

test('follower read applies deferred entries', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  const leaderCommit = trio.leader().group.status().commit;
  const follower = trio.followers()[0]!;
  assert.equal(follower.group.appliedIndex, 0);
  await follower.group.readBarrier(Date.now() + DEADLINE_MS);
  assert.ok(
    follower.group.appliedIndex >= leaderCommit,
    `applied ${follower.group.appliedIndex}, leader's commit ${leaderCommit}`,
  );
});

test('new leader applies deferred entries first', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  const next = trio.member('n2');
  assert.equal(next.group.appliedIndex, 0);
  const result = trio.member('n1').group.transferLeader('n2');
  assert.ok(result.ok, 'the transfer starts');
  await trio.until('n2 leads', () => next.group.status().role === 'leader');
  await trio.until('n2 applied its own entry', () => {
    const status = next.group.status();
    return status.commit > 6 && next.group.appliedIndex === status.commit;
  });
  // Its first apply as leader took every deferred entry, from the first entry on.
  assert.ok((next.applyRounds[0] ?? 0) >= WRITES, `rounds of ${next.applyRounds}`);
  const applied = await trio.write();
  assert.equal(applied.outcome.kind, 'documents');
  assert.equal(next.group.appliedIndex, next.group.status().commit);
});

test(`follower applies at ${DEFERRED_APPLY_ENTRIES} deferred entries`, TEST_OPTIONS, async (t) => {
  const trio = await Trio.open(t, true);
  await trio.elect('n1');
  const writes: Array<Promise<AppliedEntry>> = [];
  for (let i = 0; i < DEFERRED_APPLY_ENTRIES + 20; i++) writes.push(trio.write());
  await Promise.all(writes);
  // The commit index of those writes reaches the followers with the next append.
  await trio.write();
  await trio.settle();
  for (const follower of trio.followers()) {
    assert.ok(
      follower.group.appliedIndex >= DEFERRED_APPLY_ENTRIES - 1,
      `${follower.id} applied ${follower.group.appliedIndex} without a tick`,
    );
    for (const size of follower.applyRounds) {
      assert.ok(size >= DEFERRED_APPLY_ENTRIES - 1, `rounds of ${follower.applyRounds}`);
    }
  }
});

test('stepped-down leader resolves its proposals', TEST_OPTIONS, async (t) => {
  const trio = await Trio.open(t, true);
  await trio.elect('n1');
  await trio.write();
  await trio.settle();
  const n1 = trio.member('n1');
  const n2 = trio.member('n2');
  const n3 = trio.member('n3');

  // The followers store the write, but their acknowledgements never reach n1.
  const lastBefore = n2.group.status().lastIndex;
  const pending = trio.write();
  await trio.until('the followers store the write', () => {
    if (n2.group.status().lastIndex > lastBefore && n3.group.status().lastIndex > lastBefore) {
      trio.cut.add('n1');
      return true;
    }
    return false;
  });
  // A tick every 100 turns leaves time for the vote's fsync before an election times out.
  let turn = 0;
  await trio.until('n2 or n3 leads', () => {
    if (turn++ % 100 === 0) {
      n2.group.tick();
      n3.group.tick();
    }
    return [n2, n3].some((member) => member.group.status().role === 'leader');
  });
  const leader = [n2, n3].find((member) => member.group.status().role === 'leader')!;
  await trio.until('the new leader commits the write', () => {
    leader.group.tick();
    return leader.group.status().commit > lastBefore;
  });

  // Only the new leader ticks, so n1 applies the write, and resolves its proposal, without one.
  trio.cut.delete('n1');
  let settled = false;
  void pending.then(
    () => (settled = true),
    () => (settled = true),
  );
  await trio.until('n1 steps down and applies the write', () => {
    leader.group.tick();
    return settled;
  });
  const applied = await pending;
  assert.equal(applied.outcome.kind, 'documents');
  assert.equal(n1.group.status().role, 'follower');
});

test('membership change applies deferred entries', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  const n2 = trio.member('n2');
  assert.equal(n2.group.appliedIndex, 0, 'n2 deferred its applies');

  // n4 never runs: adding it as a learner changes the membership but not the quorum.
  const change = trio.member('n1').group.proposeConfChange([{ type: 'add_learner', node: 'n4' }]);
  assert.ok(change.ok, 'the change is proposed');
  const n1 = trio.member('n1');
  await trio.until('the change commits', () => n1.group.appliedIndex >= change.index);
  // The commit index of the change reaches the followers with the next append.
  await trio.write();
  await trio.settle();
  assert.ok(
    n2.group.appliedIndex >= change.index,
    `n2 applied ${n2.group.appliedIndex}, the change is at ${change.index}`,
  );
  assert.deepEqual(n2.file.membership.learners, ['n4']);
});

test('restarted follower replays deferred entries', TEST_OPTIONS, async (t) => {
  const trio = await Trio.withWrites(t, true, WRITES);
  assert.equal(trio.member('n2').group.appliedIndex, 0, 'n2 deferred its applies');

  const n2 = await trio.restart('n2');
  assert.equal(n2.group.appliedIndex, 0, 'the file kept the applied index');
  await trio.write();
  await trio.settle();
  const leader = trio.member('n1');
  const last = leader.group.status().commit;
  await trio.until('n2 applied everything', () => {
    trio.tickAll();
    return n2.group.appliedIndex === last && leader.group.appliedIndex === last;
  });
  assert.equal(n2.group.hashChain(), leader.group.hashChain());
});

type Step =
  | { readonly kind: 'write'; readonly count: number }
  | { readonly kind: 'tick' }
  | { readonly kind: 'read'; readonly node: number };

const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      count: fc.integer({ min: 1, max: 40 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      node: fc.integer({ min: 0, max: 2 }),
    }),
  },
);

test('reads see every committed write', TEST_OPTIONS, async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 25 }), async (steps) => {
      const trio = await Trio.open(t, true);
      await trio.elect('n1');
      const running: Array<Promise<unknown>> = [];
      for (const step of steps) {
        if (step.kind === 'write') {
          for (let i = 0; i < step.count; i++) running.push(trio.write());
        } else if (step.kind === 'tick') {
          trio.tickAll();
        } else {
          const member = trio.member(NODES[step.node]!);
          const committed = trio.member('n1').group.status().commit;
          running.push(
            member.group.readBarrier(Date.now() + DEADLINE_MS).then(() => {
              assert.ok(
                member.group.appliedIndex >= committed,
                `${member.id} read at applied ${member.group.appliedIndex}, commit was ${committed}`,
              );
            }),
          );
        }
        await new Promise((resolve) => setImmediate(resolve));
      }
      // With lazy commit a follower may learn the commit index a read waits for only from a
      // heartbeat, so the groups tick while the last operations finish.
      let finished = 0;
      const count = () => finished++;
      for (const operation of running) void operation.then(count, count);
      await trio.until('every write and read finishes', () => {
        trio.tickAll();
        return finished === running.length;
      });
      await Promise.all(running);
      await trio.settle();
      const leader = trio.member('n1');
      const commit = leader.group.status().commit;
      await trio.until('every node applied the commit index', () => {
        trio.tickAll();
        return [...trio.members.values()].every((member) => member.group.appliedIndex === commit);
      });
      for (const member of trio.members.values()) {
        assert.equal(member.group.hashChain(), leader.group.hashChain(), member.id);
      }
    }),
    { numRuns: scaled(8, 40) },
  );
});
