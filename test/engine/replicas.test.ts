/**
 * Determinism of apply: replicas fed the same log entries in the same order end with the same
 * documents, revision trees, sequences, request table and outcome hash chain, whatever their
 * commits look like. The leader appends and applies each entry in one commit. A follower
 * appends in random runs, applies later in other runs, discards the log now and then, and
 * restarts, so that it reads commands back from the file instead of its cache. Both hold some
 * applies (`holdApply`): their tree changes wait for a read, a later apply or
 * `writeHeldApply`, and a restart drops them, so the follower applies those entries again.
 * Entries include
 * conflicting and replicated edits, retries of earlier request ids, `_local/` writes,
 * `revs_limit` and `_security` changes, malformed payloads and empty no-ops.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { leavesInTreeOrder } from '../../src/document/rev-tree-query.js';
import { type Command, type CommandDocument, encodeCommand } from '../../src/engine/commands.js';
import { DatabaseFile } from '../../src/engine/database-file.js';
import type { AppliedEntry } from '../../src/engine/outcome.js';
import type { Entry } from '../../src/raft/types.js';
import { seededRandom } from '../../src/storage/power-loss.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';
import { canonicalDump, doc } from './support.js';

const IDS = ['a', 'b', 'c', '_design/v', 'é'];
const UUID = '00112233445566778899aabbccddeeff';
const REQUEST_RETENTION = 20;
/** Retries pick among this many latest request ids, more than the retention window. */
const RECENT_REQUESTS = 30;

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** Builds one document of a write, with a revision chosen from the leader's current leaves. */
function randomDocument(random: Random, leader: DatabaseFile, step: number): CommandDocument {
  const id = pick(random, IDS);
  const body = { step, n: Math.floor(random() * 3) };
  const deleted = random() < 0.2;
  const snapshot = leader.snapshot();
  const record = snapshot.document(id);
  snapshot.close();
  const leaves = record === null ? [] : leavesInTreeOrder(record.tree());
  if (leaves.length > 0 && random() < 0.6) {
    const leaf = pick(random, leaves).rev;
    return doc(id, body, { start: leaf.pos, ids: [leaf.id] }, deleted);
  }
  return doc(id, body, { start: 0, ids: [] }, deleted);
}

function replicatedDocument(random: Random, step: number): CommandDocument {
  const start = 1 + Math.floor(random() * 4);
  const branch = pick(random, ['x', 'y']);
  const ids = Array.from({ length: start }, (_, i) =>
    start - i === 1 ? 'root' : `${branch}${start - i}`,
  );
  return doc(
    pick(random, IDS),
    { step },
    { start, ids: ids.slice(0, 1 + Math.floor(random() * start)) },
    random() < 0.2,
  );
}

/** Builds the payload of entry `step` against the leader's state. */
function randomPayload(
  random: Random,
  leader: DatabaseFile,
  step: number,
  sent: string[],
): Uint8Array {
  const roll = random();
  const requestId = `n1-boot-${step}`;
  let command: Command;
  if (roll < 0.05) return new Uint8Array(0);
  if (roll < 0.08) return Buffer.from([1, 1, 200, 200]);
  if (roll < 0.14 && sent.length > 0) {
    // A retry: the same request id again, with another command; it gets the first outcome.
    // Recent ids, so that some retries fall inside the retention window and some outside.
    command = { kind: 'noop', requestId: pick(random, sent.slice(-RECENT_REQUESTS)) };
  } else if (roll < 0.2) {
    const id = pick(random, ['_local/p', '_local/q']);
    command =
      random() < 0.7
        ? {
            kind: 'local_put',
            requestId,
            id,
            revisions: { start: 0, ids: [] },
            body: Buffer.from(`{"s":${step}}`),
          }
        : { kind: 'local_delete', requestId, id, revisions: { start: 0, ids: [] } };
  } else if (roll < 0.24) {
    command = { kind: 'revs_limit', requestId, limit: 1 + Math.floor(random() * 3) };
  } else if (roll < 0.27) {
    command = {
      kind: 'security',
      requestId,
      security: Buffer.from(`{"members":{"names":["u${step}"]}}`),
    };
  } else if (roll < 0.4) {
    const docs = [replicatedDocument(random, step), replicatedDocument(random, step)];
    command = { kind: 'documents', requestId, newEdits: false, docs };
  } else {
    const count = 1 + Math.floor(random() * 3);
    const docs = Array.from({ length: count }, () => randomDocument(random, leader, step));
    command = { kind: 'documents', requestId, newEdits: true, docs };
  }
  sent.push(command.requestId);
  return encodeCommand(command);
}

interface Follower {
  file: DatabaseFile;
  appended: number;
  /** The last entry applied, held ones included: the file's applied index counts only the trees. */
  applied: number;
  outcomes: AppliedEntry[];
}

/** Appends, applies, discards and restarts the follower in random runs. */
async function followerStep(
  random: Random,
  follower: Follower,
  log: Entry[],
  path: string,
): Promise<void> {
  const file = follower.file;
  const append = log.slice(follower.appended, follower.appended + 1 + Math.floor(random() * 4));
  const firstToApply = follower.applied + 1;
  const lastToApply = Math.min(
    follower.appended + append.length,
    firstToApply - 1 + Math.floor(random() * 5),
  );
  const apply = log
    .slice(firstToApply - 1, lastToApply)
    .map(({ index, term }) => ({ index, term }));
  const holdApply = random() < 0.5;
  // A discard stays at or below the entries whose changes are in the trees. An apply without
  // `holdApply` writes the held ones and its own first.
  const discardLimit = holdApply || apply.length === 0 ? file.appliedInTrees : lastToApply;
  const discardUpTo =
    random() < 0.2
      ? Math.max(file.discarded.index, Math.min(lastToApply, discardLimit) - 2)
      : undefined;
  const staged = file.stage({ append, apply, discardUpTo, holdApply });
  follower.appended += append.length;
  follower.applied = Math.max(follower.applied, lastToApply);
  follower.outcomes.push(...staged.outcomes);
  if (random() < 0.5) await staged.durable;
  if (random() < 0.1) file.writeHeldApply();
  if (random() < 0.1) {
    await file.close();
    follower.file = await DatabaseFile.open(path);
    // Held applies were in no header: the entries after the trees' applied index come again.
    follower.applied = follower.file.applied.index;
    follower.outcomes.length = follower.applied;
  }
}

test('replicas end byte-identical with the same hash chain', async (t) => {
  const dir = await tempDir(t);
  const runs = scaled(12, 100);
  let duplicates = 0;
  for (let seed = 1; seed <= runs; seed++) {
    const random = seededRandom(seed);
    const leaderPath = join(dir, `leader-${seed}.couch`);
    const followerPath = join(dir, `follower-${seed}.couch`);
    const leader = await DatabaseFile.create(leaderPath, {
      name: 'db',
      uuid: UUID,
      requestRetention: REQUEST_RETENTION,
    });
    const follower: Follower = {
      file: await DatabaseFile.create(followerPath, {
        name: 'db',
        uuid: UUID,
        requestRetention: REQUEST_RETENTION,
      }),
      appended: 0,
      applied: 0,
      outcomes: [],
    };
    const log: Entry[] = [];
    const leaderOutcomes: AppliedEntry[] = [];
    const sent: string[] = [];
    const steps = scaled(60, 300);
    for (let step = 1; step <= steps; step++) {
      const term = 1 + Math.floor(step / 25);
      const entry: Entry = {
        index: step,
        term,
        type: 'normal',
        data: randomPayload(random, leader, step, sent),
      };
      log.push(entry);
      const staged = leader.stage({
        append: [entry],
        apply: [{ index: step, term }],
        holdApply: random() < 0.5,
      });
      leaderOutcomes.push(...staged.outcomes);
      await staged.durable;
      if (random() < 0.7) await followerStep(random, follower, log, followerPath);
    }
    while (follower.applied < steps) await followerStep(random, follower, log, followerPath);
    await follower.file.stage({}).durable;

    assert.deepEqual(follower.outcomes, leaderOutcomes, `seed ${seed}: outcomes`);
    assert.ok(follower.file.hashChain.equals(leader.hashChain), `seed ${seed}: hash chain`);
    const leaderSnapshot = leader.snapshot();
    const followerSnapshot = follower.file.snapshot();
    assert.equal(follower.file.appliedInTrees, steps, `seed ${seed}: a read writes held applies`);
    assert.ok(
      canonicalDump(followerSnapshot).equals(canonicalDump(leaderSnapshot)),
      `seed ${seed}: trees`,
    );
    duplicates += leaderOutcomes.filter((outcome) => outcome.duplicate).length;
    leaderSnapshot.close();
    followerSnapshot.close();
    await leader.close();
    await follower.file.close();
  }
  assert.ok(duplicates > 0, 'some retries got their first outcome back');
});
