/**
 * The engine against a reference model: random interactive edits, deletes, replicated
 * revisions, `_local/` writes and `revs_limit` changes, submitted in concurrent groups so that
 * group commit puts several commands into one stage. The model is a plain in-memory database
 * built on the document layer's rules (revision trees, winners, stemming), with one sequence
 * per changed document. The engine must agree with it on every result, revision tree, winner,
 * sequence, `_changes` order and count, also after the file is reopened.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { docKind } from '../../src/document/doc-id.js';
import {
  formatLocalRev,
  formatRev,
  NO_REVISIONS,
  nextLocalRevCounter,
  type RevPath,
} from '../../src/document/rev.js';
import { applyInteractiveEdit, resolveInteractiveEdit } from '../../src/document/rev-edit.js';
import { stem } from '../../src/document/rev-stem.js';
import { mergePath, type RevTree } from '../../src/document/rev-tree.js';
import {
  isDeleted,
  leavesInTreeOrder,
  sortedLeaves,
  winner,
} from '../../src/document/rev-tree-query.js';
import { newRevId } from '../../src/document/revid.js';
import { LocalDatabase } from '../../src/engine/local-database.js';
import type { WriteDocument, WriteResult } from '../../src/http/backend.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

interface ModelLeaf {
  readonly deleted: boolean;
  readonly body: string;
}

interface ModelDoc {
  tree: RevTree<ModelLeaf>;
  seq: number;
}

/** The reference: what a database holds after each write, computed without any file. */
class Model {
  readonly docs = new Map<string, ModelDoc>();
  readonly locals = new Map<string, { counter: number; body: string }>();
  updateSeq = 0;
  revsLimit = 1000;

  write(doc: WriteDocument, newEdits: boolean): WriteResult {
    if (doc.kind === 'local') return this.#local(doc);
    const tree = this.docs.get(doc.id)?.tree ?? [];
    const leaf = { deleted: doc.deleted, body: doc.body.toString() };
    if (!newEdits) {
      const merged = mergePath(tree, doc.revisions, leaf);
      if (merged.tree !== tree) this.#store(doc.id, merged.tree);
      return {
        ok: true,
        id: doc.id,
        rev: formatRev({ pos: doc.revisions.start, id: doc.revisions.ids[0]! }),
      };
    }
    const target = resolveInteractiveEdit(tree, doc.revisions, doc.deleted);
    const conflict: WriteResult = {
      ok: false,
      id: doc.id,
      error: 'conflict',
      reason: 'Document update conflict.',
    };
    if (target.kind === 'conflict') return conflict;
    const revId = newRevId({ deleted: doc.deleted, parent: target.parent, body: doc.body });
    const applied = applyInteractiveEdit(tree, target, revId, leaf);
    if (applied.kind === 'conflict') return conflict;
    this.#store(doc.id, applied.tree);
    return { ok: true, id: doc.id, rev: formatRev(applied.rev) };
  }

  #store(id: string, tree: RevTree<ModelLeaf>): void {
    this.updateSeq += 1;
    this.docs.set(id, { tree: stem(tree, this.revsLimit), seq: this.updateSeq });
  }

  #local(doc: WriteDocument): WriteResult {
    const counter = nextLocalRevCounter(doc.revisions, doc.deleted)!;
    if (doc.deleted) {
      if (!this.locals.delete(doc.id)) {
        return { ok: false, id: doc.id, error: 'not_found', reason: 'missing' };
      }
    } else {
      this.locals.set(doc.id, { counter, body: doc.body.toString() });
    }
    return { ok: true, id: doc.id, rev: formatLocalRev(counter) };
  }

  setRevsLimit(limit: number): void {
    this.revsLimit = limit;
    this.updateSeq += 1;
  }
}

type Operation =
  | { kind: 'edit'; id: string; leafPick: number | null; deleted: boolean; n: number }
  | { kind: 'replicate'; id: string; path: RevPath; deleted: boolean; n: number }
  | { kind: 'local'; id: string; deleted: boolean; n: number }
  | { kind: 'revsLimit'; limit: number };

const ids = ['a', 'b', 'c', '_design/d'];
/** Replicated paths are drawn from one history per document, so ids never get two parents. */
const replicatedPath = fc
  .record({
    start: fc.integer({ min: 1, max: 6 }),
    length: fc.integer({ min: 1, max: 3 }),
    branch: fc.constantFrom('p', 'q'),
  })
  .map(({ start, length, branch }) => {
    const count = Math.min(length, start);
    const ids = Array.from({ length: count }, (_, i) => `${branch}${start - i}`);
    // The first revision is shared, so the branches join there.
    if (start - count + 1 === 1) ids[count - 1] = 'root1';
    return { start, ids };
  });

const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('edit' as const),
      id: fc.constantFrom(...ids),
      leafPick: fc.option(fc.nat(), { nil: null }),
      deleted: fc.boolean(),
      n: fc.nat(5),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('replicate' as const),
      id: fc.constantFrom(...ids),
      path: replicatedPath,
      deleted: fc.boolean(),
      n: fc.nat(5),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('local' as const),
      id: fc.constantFrom('_local/x', '_local/y'),
      deleted: fc.boolean(),
      n: fc.nat(5),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('revsLimit' as const),
      limit: fc.integer({ min: 1, max: 4 }),
    }),
  },
);

/** Turns an operation into a document write, choosing revisions from the model's leaves. */
function writeDocumentFor(
  model: Model,
  operation: Exclude<Operation, { kind: 'revsLimit' }>,
): { doc: WriteDocument; newEdits: boolean } {
  const body = Buffer.from(`{"n":${operation.n}}`);
  let revisions: RevPath = NO_REVISIONS;
  if (operation.kind === 'edit') {
    const leaves = leavesInTreeOrder(model.docs.get(operation.id)?.tree ?? []);
    if (operation.leafPick !== null && leaves.length > 0) {
      const leaf = leaves[operation.leafPick % leaves.length]!;
      revisions = { start: leaf.rev.pos, ids: [leaf.rev.id] };
    } else if (operation.leafPick !== null) {
      revisions = { start: 1, ids: ['nope'] };
    }
  } else if (operation.kind === 'replicate') {
    revisions = operation.path;
  } else {
    const local = model.locals.get(operation.id);
    revisions = local === undefined ? NO_REVISIONS : { start: 0, ids: [String(local.counter)] };
  }
  const doc: WriteDocument = {
    id: operation.id,
    kind: docKind(operation.id),
    revisions,
    deleted: operation.deleted,
    attachments: null,
    body,
  };
  return { doc, newEdits: operation.kind !== 'replicate' };
}

/** Checks every document fact of the engine against the model. */
function compare(db: LocalDatabase, model: Model, context: string): void {
  db.read((snapshot) => {
    assert.equal(snapshot.updateSeq, model.updateSeq, `${context}: update_seq`);
    assert.equal(snapshot.revsLimit(), model.revsLimit, `${context}: revs_limit`);
    const info = snapshot.info();
    const live = [...model.docs.values()].filter((doc) => !isDeleted(doc.tree)).length;
    assert.equal(info.docCount, live, `${context}: doc_count`);
    assert.equal(info.docDelCount, model.docs.size - live, `${context}: doc_del_count`);
    for (const [id, expected] of model.docs) {
      const record = snapshot.document(id);
      assert.ok(record !== null, `${context}: ${id} exists`);
      assert.equal(record.updateSeq, expected.seq, `${context}: ${id} seq`);
      assert.deepEqual(record.winner, winner(expected.tree).rev, `${context}: ${id} winner`);
      const leaves = sortedLeaves(record.storedTree()).map((leaf) => ({
        rev: formatRev(leaf.rev),
        deleted: leaf.value.deleted,
        body: snapshot.readRecord(leaf.value.body).toString(),
      }));
      const expectedLeaves = sortedLeaves(expected.tree).map((leaf) => ({
        rev: formatRev(leaf.rev),
        deleted: leaf.value.deleted,
        body: leaf.value.body,
      }));
      assert.deepEqual(leaves, expectedLeaves, `${context}: ${id} leaves`);
    }
    const changes = [...snapshot.changesAfter(0, false)].map((record) => [
      record.updateSeq,
      record.id,
    ]);
    const expectedChanges = [...model.docs]
      .map(([id, doc]) => [doc.seq, id])
      .sort((x, y) => (x[0] as number) - (y[0] as number));
    assert.deepEqual(changes, expectedChanges, `${context}: _changes`);
    const locals = [...snapshot.localDocuments()].map((doc) => [
      doc.id,
      doc.rev,
      doc.body.toString(),
    ]);
    const expectedLocals = [...model.locals]
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([id, doc]) => [id, formatLocalRev(doc.counter), doc.body]);
    assert.deepEqual(locals, expectedLocals, `${context}: local documents`);
  });
}

test('engine matches the reference model', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  const groupsArbitrary = fc.array(fc.array(operationArbitrary, { minLength: 1, maxLength: 4 }), {
    minLength: 1,
    maxLength: 12,
  });
  await fc.assert(
    fc.asyncProperty(groupsArbitrary, async (groups) => {
      const path = join(dir, `model-${run++}.couch`);
      let db = await LocalDatabase.create(path, { name: 'model' });
      const model = new Model();
      try {
        for (const [groupIndex, group] of groups.entries()) {
          // Commands are built from the model before the group is submitted, in order, so
          // the engine gets exactly what the model applies.
          const pending: Array<Promise<unknown>> = [];
          for (const operation of group) {
            if (operation.kind === 'revsLimit') {
              model.setRevsLimit(operation.limit);
              pending.push(db.setRevsLimit(operation.limit));
              continue;
            }
            const { doc, newEdits } = writeDocumentFor(model, operation);
            const expected = model.write(doc, newEdits);
            pending.push(
              db.write({ docs: [doc], newEdits }).then(([result]) => {
                assert.deepEqual(result, expected, `group ${groupIndex}: result of ${doc.id}`);
              }),
            );
          }
          await Promise.all(pending);
          compare(db, model, `after group ${groupIndex}`);
        }
        await db.close();
        db = await LocalDatabase.open(path);
        compare(db, model, 'after reopening');
      } finally {
        await db.close();
      }
    }),
    { numRuns: scaled(100, 1000) },
  );
});
