/**
 * The commit a Raft group's driver uses (`DatabaseFile.stage`): appends, truncation, hard
 * state, applies with outcomes, discards, and the rules it asserts. Also the log read back
 * byte for byte, bodies stored once, request-id deduplication, the hash chain, and a failed
 * fsync being fatal for the handle.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Command, encodeCommand } from '../../src/engine/commands.js';
import { DatabaseFile } from '../../src/engine/database-file.js';
import { encodeOutcome, INITIAL_HASH_CHAIN } from '../../src/engine/outcome.js';
import type { Entry } from '../../src/raft/types.js';
import { FileFailedError } from '../../src/storage/errors.js';
import { FsyncFailureFileSystem } from '../../src/storage/fault-layers.js';
import { nodeFileSystem } from '../../src/storage/io.js';
import { InvariantError } from '../../src/util/assert.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';
import { doc, writeCommand } from './support.js';

function entry(
  index: number,
  term: number,
  command: Command | Uint8Array,
  type: Entry['type'] = 'normal',
): Entry {
  const data = command instanceof Uint8Array ? command : encodeCommand(command);
  return { index, term, type, data };
}

function put(requestId: string, id: string, body: Record<string, unknown> | string = {}): Command {
  return writeCommand(requestId, [doc(id, body)]);
}

async function createFile(dir: string, name = 'db.couch', requestRetention?: number) {
  return DatabaseFile.create(join(dir, name), { name: 'test', requestRetention });
}

test('append, apply and reopen', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  const entries = [
    entry(1, 1, new Uint8Array(0)),
    entry(2, 1, put('r1', 'a', { v: 1 })),
    entry(3, 1, Buffer.from('{"voters":["n1"]}'), 'config'),
    entry(4, 1, put('r2', 'b', '{"n":12345678901234567890}')),
  ];
  const membership = { voters: ['n1', 'n2', 'n3'], learners: ['n4'], votersOutgoing: [] };
  const first = file.stage({
    append: entries,
    hardState: { term: 1, vote: 'n1', commit: 2 },
    membership,
  });
  assert.deepEqual(first.outcomes, []);
  await first.durable;
  const second = file.stage({
    hardState: { term: 1, vote: 'n1', commit: 4 },
    apply: entries.map(({ index, term }) => ({ index, term })),
  });
  assert.deepEqual(
    second.outcomes.map((outcome) => outcome.outcome.kind),
    ['none', 'documents', 'none', 'documents'],
  );
  assert.equal(second.outcomes[1]!.requestId, 'r1');
  await second.durable;
  const chain = file.hashChain;
  await file.close();

  const reopened = await DatabaseFile.open(join(dir, 'db.couch'));
  t.after(() => reopened.close());
  assert.deepEqual(reopened.hardState, { term: 1, vote: 'n1', commit: 4 });
  assert.deepEqual(reopened.membership, membership);
  assert.deepEqual(reopened.applied, { index: 4, term: 1 });
  assert.deepEqual(reopened.snapshotMeta(), { index: 4, term: 1, membership });
  assert.deepEqual(reopened.logExtent(), { firstIndex: 1, lastIndex: 4, lastTerm: 1 });
  assert.ok(reopened.hashChain.equals(chain));
  const read = reopened.readLogEntries(1, 4);
  assert.deepEqual(
    read.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString('hex')]),
    entries.map((e) => [e.index, e.term, e.type, Buffer.from(e.data).toString('hex')]),
  );
  const snapshot = reopened.snapshot();
  assert.equal(snapshot.info().docCount, 2);
  assert.equal(
    snapshot.document('b')!.content(snapshot.document('b')!.winner)!.body.toString(),
    '{"n":12345678901234567890}',
  );
  snapshot.close();
});

test('log and its shape read back exactly', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  const payloadArbitrary = fc.oneof(
    fc.constant(new Uint8Array(0)),
    fc.uint8Array({ maxLength: 40 }),
    fc
      .record({ id: fc.string({ maxLength: 6 }), body: fc.string({ maxLength: 30 }) })
      .map(({ id, body }) => encodeCommand(put(`r-${id}`, id || 'x', { body }))),
  );
  const stepArbitrary = fc.record({
    payloads: fc.array(fc.tuple(payloadArbitrary, fc.boolean()), { minLength: 1, maxLength: 5 }),
    overlap: fc.nat({ max: 3 }),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(stepArbitrary, { minLength: 1, maxLength: 6 }), async (steps) => {
      const file = await createFile(dir, `log-${run++}.couch`);
      const model: Entry[] = [];
      let term = 1;
      for (const step of steps) {
        term += 1;
        const start = Math.max(1, model.length + 1 - step.overlap);
        const appended = step.payloads.map(([data, config], i) =>
          entry(start + i, term, data, config ? 'config' : 'normal'),
        );
        model.length = start - 1;
        model.push(...appended);
        await file.stage({ append: appended }).durable;
      }
      assert.deepEqual(file.logExtent(), {
        firstIndex: 1,
        lastIndex: model.length,
        lastTerm: model.at(-1)!.term,
      });
      const read = file.readLogEntries(1, model.length);
      assert.equal(read.length, model.length);
      read.forEach((got, i) => {
        const expected = model[i]!;
        assert.equal(got.index, expected.index);
        assert.equal(got.term, expected.term);
        assert.equal(got.type, expected.type);
        assert.ok(
          Buffer.from(got.data).equals(Buffer.from(expected.data)),
          `payload of ${got.index}`,
        );
      });
      // The shape a group opens with: terms and payload lengths, without reading payloads.
      assert.deepEqual(file.readLogShape(1, model.length), {
        terms: model.map((expected) => expected.term),
        payloadBytes: model.map((expected) => expected.data.byteLength),
      });
      await file.close();
    }),
    { numRuns: scaled(25, 300) },
  );
});

test('bodies are stored once, at append', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'once.couch');
  const file = await DatabaseFile.create(path, { name: 'once' });
  const body = { text: 'x'.repeat(3000) };
  await file.stage({
    append: [entry(1, 1, put('r1', 'a', body)), entry(2, 1, put('r2', 'b', body))],
  }).durable;
  const endAfterAppend = file.snapshot().info().sizes.file;
  await file.stage({ apply: [{ index: 1, term: 1 }] }).durable;
  await file.close();
  // Entry 2 is applied after a reopen, so its command is read back from the file.
  const reopened = await DatabaseFile.open(path);
  t.after(() => reopened.close());
  await reopened.stage({ apply: [{ index: 2, term: 1 }] }).durable;
  const snapshot = reopened.snapshot();
  for (const id of ['a', 'b']) {
    const [leaf] = snapshot.docInfo(id)!.tree.map((root) => root.node.value!);
    assert.ok(
      leaf!.body.pointer < endAfterAppend,
      `${id}'s leaf points at the record written at append`,
    );
    assert.equal(snapshot.readRecord(leaf!.body).toString(), JSON.stringify(body));
  }
  snapshot.close();
});

test('conflicting tail is truncated', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  await file.stage({ append: [1, 2, 3, 4, 5].map((i) => entry(i, 1, put(`t1-${i}`, `d${i}`))) })
    .durable;
  await file.stage({
    apply: [
      { index: 1, term: 1 },
      { index: 2, term: 1 },
    ],
  }).durable;
  // A new leader's entries overwrite the log from index 4 on.
  await file.stage({ append: [4, 5, 6].map((i) => entry(i, 2, put(`t2-${i}`, `e${i}`))) }).durable;
  assert.deepEqual(file.logExtent(), { firstIndex: 1, lastIndex: 6, lastTerm: 2 });
  assert.equal(file.term(3), 1);
  assert.equal(file.term(4), 2);
  const applied = file.stage({
    apply: [3, 4, 5, 6].map((i) => ({ index: i, term: file.term(i)! })),
  });
  assert.deepEqual(
    applied.outcomes.map((outcome) => outcome.requestId),
    ['t1-3', 't2-4', 't2-5', 't2-6'],
  );
  await applied.durable;
  const snapshot = file.snapshot();
  assert.deepEqual(
    [...snapshot.documents({ inclusiveEnd: true, descending: false })].map((record) => record.id),
    ['d1', 'd2', 'd3', 'e4', 'e5', 'e6'],
  );
  snapshot.close();
  // An explicit truncation with nothing appended.
  await file.stage({ append: [7, 8].map((i) => entry(i, 3, put(`t3-${i}`, `f${i}`))) }).durable;
  await file.stage({ truncateAfter: 7 }).durable;
  assert.deepEqual(file.logExtent(), { firstIndex: 1, lastIndex: 7, lastTerm: 3 });
});

test('stage asserts the log rules', async (t) => {
  const dir = await tempDir(t);
  const cases: Array<[string, (file: DatabaseFile) => void]> = [
    ['truncating applied entries', (file) => file.stage({ truncateAfter: 1 })],
    ['appending with a gap', (file) => file.stage({ append: [entry(5, 1, put('x', 'x'))] })],
    ['applying out of order', (file) => file.stage({ apply: [{ index: 4, term: 1 }] })],
    [
      'applying a missing entry',
      (file) =>
        file.stage({
          apply: [
            { index: 3, term: 1 },
            { index: 4, term: 1 },
          ],
        }),
    ],
    ['applying with the wrong term', (file) => file.stage({ apply: [{ index: 3, term: 2 }] })],
    ['discarding past the applied index', (file) => file.stage({ discardUpTo: 3 })],
    [
      'applying a command where the log has an entry',
      (file) => file.stage({ apply: [{ index: 3, term: 1, command: put('y', 'y') }] }),
    ],
  ];
  for (const [name, run] of cases) {
    const file = await createFile(dir, `${name.replaceAll(' ', '-')}.couch`);
    await file.stage({ append: [1, 2, 3].map((i) => entry(i, 1, put(`r${i}`, `d${i}`))) }).durable;
    await file.stage({
      apply: [
        { index: 1, term: 1 },
        { index: 2, term: 1 },
      ],
    }).durable;
    assert.throws(() => run(file), InvariantError, name);
    // A broken rule leaves the handle unusable, as a bug must not go on writing.
    assert.throws(() => file.snapshot(), InvariantError, `${name}: the handle is failed`);
    await file.close();
    const reopened = await DatabaseFile.open(join(dir, `${name.replaceAll(' ', '-')}.couch`));
    assert.deepEqual(reopened.applied, { index: 2, term: 1 }, `${name}: the file is intact`);
    await reopened.close();
  }
});

test('discard keeps the last index and term', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'discard.couch');
  const file = await DatabaseFile.create(path, { name: 'discard' });
  const entries = [1, 2, 3, 4, 5].map((i) => entry(i, i < 4 ? 1 : 2, put(`r${i}`, `d${i}`)));
  await file.stage({
    append: entries,
    apply: entries.map(({ index, term }) => ({ index, term })),
    discardUpTo: 3,
  }).durable;
  assert.deepEqual(file.logExtent(), { firstIndex: 4, lastIndex: 5, lastTerm: 2 });
  assert.deepEqual(file.discarded, { index: 3, term: 1 });
  assert.equal(file.term(3), 1);
  assert.equal(file.term(2), undefined);
  await file.stage({ discardUpTo: 5 }).durable;
  await file.stage({ discardUpTo: 4 }).durable;
  await file.close();

  const reopened = await DatabaseFile.open(path);
  t.after(() => reopened.close());
  assert.deepEqual(reopened.logExtent(), { firstIndex: 6, lastIndex: 5, lastTerm: 2 });
  assert.deepEqual(reopened.readLogEntries(1, 10), []);
  await reopened.stage({ append: [entry(6, 3, put('r6', 'd6'))], apply: [{ index: 6, term: 3 }] })
    .durable;
  assert.deepEqual(reopened.logExtent(), { firstIndex: 6, lastIndex: 6, lastTerm: 3 });
  const snapshot = reopened.snapshot();
  assert.equal(snapshot.info().docCount, 6);
  snapshot.close();
});

test('request ids answer retries with the first outcome', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir, 'requests.couch', 3);
  t.after(() => file.close());
  const apply = (index: number, command: Command) =>
    file.stage({ apply: [{ index, term: 0, command }] });

  const first = apply(1, put('req-1', 'a'));
  await first.durable;
  const retry = apply(2, put('req-1', 'a'));
  await retry.durable;
  assert.equal(retry.outcomes[0]!.duplicate, true);
  assert.deepEqual(retry.outcomes[0]!.outcome, first.outcomes[0]!.outcome);
  assert.equal(file.updateSeq, 1, 'a retry changes nothing');

  for (let index = 3; index <= 4; index++)
    await apply(index, { kind: 'noop', requestId: `n${index}` }).durable;
  // Entry 1 is 4 entries back now, beyond the retention of 3: the id is new again.
  const late = apply(5, put('req-1', 'a'));
  await late.durable;
  assert.equal(late.outcomes[0]!.duplicate, false);
  assert.deepEqual(late.outcomes[0]!.outcome, {
    kind: 'documents',
    results: [{ ok: false, id: 'a', error: 'conflict', reason: 'Document update conflict.' }],
  });
  for (let index = 6; index <= 12; index++)
    await apply(index, { kind: 'noop', requestId: `n${index}` }).durable;
  const snapshot = file.snapshot();
  const indexes = snapshot.requestRecords().map(([, record]) => record.index);
  assert.deepEqual(
    indexes.sort((a, b) => a - b),
    [9, 10, 11, 12],
    'older records are pruned',
  );
  snapshot.close();
});

test('hash chain covers every outcome', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  const entries = [
    entry(1, 1, new Uint8Array(0)),
    entry(2, 1, put('r1', 'a')),
    entry(3, 1, Buffer.from([9, 9, 9])),
    entry(4, 1, { kind: 'revs_limit', requestId: 'r2', limit: 7 }),
  ];
  assert.ok(file.hashChain.equals(INITIAL_HASH_CHAIN));
  const staged = file.stage({
    append: entries,
    apply: entries.map(({ index, term }) => ({ index, term })),
  });
  await staged.durable;
  let chain: Buffer = Buffer.from([0]);
  for (const applied of staged.outcomes) {
    const index = Buffer.alloc(8);
    index.writeBigUInt64BE(BigInt(applied.index));
    chain = createHash('sha256')
      .update(chain)
      .update(index)
      .update(encodeOutcome(applied.outcome))
      .digest();
  }
  assert.ok(file.hashChain.equals(chain));
  assert.equal(
    staged.outcomes[2]!.outcome.kind,
    'error',
    'a malformed payload is a rejected command',
  );
  assert.equal(file.snapshot().revsLimit(), 7);
});

test('stages pipeline and become durable in order', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  const order: number[] = [];
  const updates: number[] = [];
  file.onUpdate((seq) => updates.push(seq));
  const stages = [1, 2, 3, 4, 5, 6].map((index) => {
    const staged = file.stage({
      append: [entry(index, 1, put(`r${index}`, `d${index}`))],
      apply: [{ index, term: 1 }],
    });
    assert.equal(staged.outcomes.length, 1, 'outcomes are known before the commit');
    return staged.durable.then(() => order.push(index));
  });
  await Promise.all(stages);
  assert.deepEqual(order, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(updates, [1, 2, 3, 4, 5, 6]);
});

test('failed fsync is fatal for the handle', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'fsync.couch');
  const fileSystem = new FsyncFailureFileSystem(nodeFileSystem, { failAfterSyncs: null });
  const file = await DatabaseFile.create(path, { name: 'fsync', fileSystem });
  await file.stage({ apply: [{ index: 1, term: 0, command: put('r1', 'a') }] }).durable;
  fileSystem.settings.failAfterSyncs = fileSystem.settings.syncCount;
  const failing = file.stage({ apply: [{ index: 2, term: 0, command: put('r2', 'b') }] });
  const later = file.stage({ apply: [{ index: 3, term: 0, command: put('r3', 'c') }] });
  await assert.rejects(failing.durable, FileFailedError);
  await assert.rejects(later.durable, FileFailedError);
  assert.throws(() => file.stage({}), FileFailedError);
  assert.throws(() => file.snapshot(), FileFailedError);
  await file.close();

  const reopened = await DatabaseFile.open(path);
  t.after(() => reopened.close());
  // The failed commits' headers may or may not have reached the disk: the outcome is unknown.
  assert.ok(reopened.applied.index >= 1, 'the acknowledged commit survives');
  assert.ok(reopened.applied.index <= 3, 'nothing beyond the stages called');
  const snapshot = reopened.snapshot();
  assert.equal(snapshot.info().docCount, reopened.applied.index);
  snapshot.close();
});

test('a document that breaks an invariant fails alone', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  // The HTTP layer rejects a `_revisions.start` below its number of ids, but a command from
  // the log may still carry one. The merge's assertion must then not stop the group.
  const bad = doc('x', {}, { start: 1, ids: ['b', 'a'] });
  const good = doc('y', {}, { start: 1, ids: ['a'] });
  const staged = file.stage({
    apply: [{ index: 1, term: 0, command: writeCommand('r1', [bad, good], false) }],
  });
  await staged.durable;
  const outcome = staged.outcomes[0]!.outcome;
  assert.equal(outcome.kind, 'documents');
  const [failed, written] = outcome.kind === 'documents' ? outcome.results : [];
  assert.equal(failed!.ok, false);
  assert.equal(!failed!.ok && failed!.error, 'unknown_error');
  assert.equal(written!.ok, true);
  const snapshot = file.snapshot();
  assert.equal(snapshot.document('x'), null);
  assert.equal(snapshot.updateSeq, 1);
  snapshot.close();
});

test('retention of zero records no request ids', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir, 'no-requests.couch', 0);
  t.after(() => file.close());
  for (const index of [1, 2]) {
    const staged = file.stage({
      apply: [{ index, term: 0, command: put('same-id', `d${index}`) }],
    });
    assert.equal(staged.outcomes[0]!.duplicate, false);
    await staged.durable;
  }
  const snapshot = file.snapshot();
  assert.deepEqual(snapshot.requestRecords(), []);
  assert.equal(snapshot.info().docCount, 2);
  snapshot.close();
});

test('malformed documents from the log fail alone', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  const long = 'x'.repeat(70_000);
  const commands: Command[] = [
    writeCommand(`r-${long}`, [doc(long, {}), doc('ok', {})]),
    {
      kind: 'local_put',
      requestId: 'r2',
      id: `_local/${long}`,
      revisions: { start: 0, ids: [] },
      body: Buffer.from('{}'),
    },
    {
      kind: 'local_put',
      requestId: 'r3',
      id: 'not-local',
      revisions: { start: 0, ids: [] },
      body: Buffer.from('{}'),
    },
    {
      kind: 'local_put',
      requestId: 'r4',
      id: '_local/bad',
      revisions: { start: 0, ids: [] },
      body: Buffer.from('[]'),
    },
    writeCommand('r5', [
      doc('not-object', '[1]'),
      {
        ...doc('bad-attachments', {}),
        attachments: [{ kind: 'stub', name: '_reserved', revpos: null }],
      },
    ]),
  ];
  const staged = file.stage({
    apply: commands.map((command, i) => ({ index: i + 1, term: 0, command })),
  });
  await staged.durable;
  const results = staged.outcomes.flatMap(({ outcome }) => {
    if (outcome.kind === 'documents') return outcome.results;
    return outcome.kind === 'local' ? [outcome.result] : [];
  });
  assert.deepEqual(
    results.map((result) => (result.ok ? 'ok' : result.error)),
    [
      'illegal_docid',
      'ok',
      'illegal_docid',
      'bad_request',
      'bad_request',
      'bad_request',
      'bad_request',
    ],
  );
  const snapshot = file.snapshot();
  assert.equal(snapshot.info().docCount, 1);
  assert.deepEqual(
    snapshot.requestRecords().map(([id]) => id),
    ['r2', 'r3', 'r4', 'r5'],
    'the long request id is not recorded',
  );
  snapshot.close();
});

test('revision positions stay safe integers', async (t) => {
  const dir = await tempDir(t);
  const file = await createFile(dir);
  t.after(() => file.close());
  const top = Number.MAX_SAFE_INTEGER;
  const replicated = writeCommand('r1', [doc('x', {}, { start: top, ids: ['a'] })], false);
  const edit = writeCommand('r2', [doc('x', { n: 1 }, { start: top, ids: ['a'] })]);
  const staged = file.stage({
    apply: [
      { index: 1, term: 0, command: replicated },
      { index: 2, term: 0, command: edit },
    ],
  });
  await staged.durable;
  const last = staged.outcomes[1]!.outcome;
  assert.deepEqual(last, {
    kind: 'documents',
    results: [{ ok: false, id: 'x', error: 'bad_request', reason: 'Invalid rev format' }],
  });
});

test('unsynced stage writes no header', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'db.couch');
  const file = await createFile(dir);
  const entries = [entry(1, 1, put('r1', 'a')), entry(2, 1, put('r2', 'b'))];
  await file.stage({ append: entries, hardState: { term: 1, vote: 'n1', commit: 0 } }).durable;
  const before = readFileSync(path);

  const first = file.stage({ apply: [{ index: 1, term: 1 }], sync: false });
  assert.equal(first.outcomes.length, 1);
  await first.durable;
  const snapshot = file.snapshot();
  assert.equal(snapshot.info().docCount, 1, 'reads see the unsynced apply');
  snapshot.close();
  assert.ok(readFileSync(path).equals(before), 'the file is unchanged');

  // A close before a synced stage drops the unsynced apply. The log still contains the entries.
  await file.close();
  const reopened = await DatabaseFile.open(path);
  assert.deepEqual(reopened.applied, { index: 0, term: 0 });
  assert.deepEqual(reopened.logExtent(), { firstIndex: 1, lastIndex: 2, lastTerm: 1 });
  reopened.stage({ apply: [{ index: 1, term: 1 }], sync: false });
  // A synced stage's header covers the unsynced apply before it.
  const third = entry(3, 1, put('r3', 'c'));
  await reopened.stage({ append: [third], apply: [{ index: 2, term: 1 }] }).durable;
  await reopened.close();
  const last = await DatabaseFile.open(path);
  t.after(() => last.close());
  assert.deepEqual(last.applied, { index: 2, term: 1 });
  const recovered = last.snapshot();
  assert.equal(recovered.info().docCount, 2);
  recovered.close();
});
