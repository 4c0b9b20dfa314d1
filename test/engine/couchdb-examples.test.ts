/**
 * Examples from CouchDB 3.x's documentation, as tables run through the engine:
 * - the winner rule ("Replication and conflict model"): a live leaf beats every deleted one,
 *   then the higher revision number wins, then the greater revision id. A document whose
 *   leaves are all deleted is deleted, and its winner follows the same rule;
 * - `_conflicts` and `_deleted_conflicts` of `GET /{db}/{docid}?conflicts=true`;
 * - resolving a conflict by deleting the losing revision;
 * - the request and response of `POST /{db}/_revs_diff` in the API reference.
 * Revisions are given with `new_edits=false`, as replication writes them.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { LocalDatabase } from '../../src/engine/local-database.js';
import { tempDir } from '../support/tmp.js';

interface Branch {
  /** Revisions newest first, as `_revisions.ids`; the first is at `start`. */
  readonly start: number;
  readonly ids: readonly string[];
  readonly deleted?: boolean;
}

interface WinnerCase {
  readonly name: string;
  readonly branches: readonly Branch[];
  readonly winner: string;
  readonly deleted: boolean;
  readonly conflicts: readonly string[];
  readonly deletedConflicts: readonly string[];
}

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const C = 'c'.repeat(32);
const ROOT = `${'0'.repeat(31)}1`;

const winnerCases: readonly WinnerCase[] = [
  {
    name: 'greater revision id wins between equal numbers',
    branches: [
      { start: 2, ids: [A, ROOT] },
      { start: 2, ids: [B, ROOT] },
    ],
    winner: `2-${B}`,
    deleted: false,
    conflicts: [`2-${A}`],
    deletedConflicts: [],
  },
  {
    name: 'higher revision number wins',
    branches: [
      { start: 3, ids: [A, C, ROOT] },
      { start: 2, ids: [B, ROOT] },
    ],
    winner: `3-${A}`,
    deleted: false,
    conflicts: [`2-${B}`],
    deletedConflicts: [],
  },
  {
    name: 'live leaf beats a longer deleted branch',
    branches: [
      { start: 2, ids: [A, ROOT] },
      { start: 3, ids: [C, B, ROOT], deleted: true },
    ],
    winner: `2-${A}`,
    deleted: false,
    conflicts: [],
    deletedConflicts: [`3-${C}`],
  },
  {
    name: 'all leaves deleted',
    branches: [
      { start: 2, ids: [A, ROOT], deleted: true },
      { start: 3, ids: [C, B, ROOT], deleted: true },
    ],
    winner: `3-${C}`,
    deleted: true,
    conflicts: [],
    deletedConflicts: [`2-${A}`],
  },
  {
    name: 'unrelated roots still conflict',
    branches: [
      { start: 1, ids: [A] },
      { start: 1, ids: [C] },
      { start: 1, ids: [B], deleted: true },
    ],
    winner: `1-${C}`,
    deleted: false,
    conflicts: [`1-${A}`],
    deletedConflicts: [`1-${B}`],
  },
];

async function database(t: TestContext): Promise<LocalDatabase> {
  const db = await LocalDatabase.create(join(await tempDir(t), 'examples.couch'), {
    name: 'examples',
  });
  t.after(() => db.close());
  return db;
}

function replicated(id: string, branch: Branch, body: string): string {
  const revisions = JSON.stringify({ start: branch.start, ids: branch.ids });
  const deleted = branch.deleted === true ? ',"_deleted":true' : '';
  return `{"_id":"${id}","_revisions":${revisions}${deleted},"body":"${body}"}`;
}

for (const example of winnerCases) {
  test(`winner: ${example.name}`, async (t) => {
    const db = await database(t);
    const docs = example.branches.map((branch, i) => replicated('doc', branch, `branch ${i}`));
    await db.bulkDocs(docs, { newEdits: false });
    const [row] = db.allDocs({ keys: ['doc'] }).rows;
    assert.ok(row !== undefined, 'a row for the document');
    assert.ok('value' in row, 'the document exists');
    assert.equal(row.value.rev, example.winner);
    assert.equal(row.value.deleted === true, example.deleted);
    const doc = JSON.parse(
      db.get('doc', { rev: example.winner, conflicts: true, deletedConflicts: true }).toString(),
    ) as Record<string, unknown>;
    assert.deepEqual(doc._conflicts ?? [], example.conflicts);
    assert.deepEqual(doc._deleted_conflicts ?? [], example.deletedConflicts);
    const [change] = db.changes({ style: 'all_docs' }).results;
    assert.equal(change!.changes[0]!.rev, example.winner, '_changes lists the winner first');
    assert.equal(change!.changes.length, example.branches.length);
  });
}

test('deleting the losing revision resolves a conflict', async (t) => {
  const db = await database(t);
  await db.bulkDocs(
    [
      replicated('doc', { start: 2, ids: [A, ROOT] }, 'mine'),
      replicated('doc', { start: 2, ids: [B, ROOT] }, 'theirs'),
    ],
    { newEdits: false },
  );
  const before = JSON.parse(db.get('doc', { conflicts: true }).toString()) as Record<
    string,
    unknown
  >;
  assert.equal(before._rev, `2-${B}`);
  assert.deepEqual(before._conflicts, [`2-${A}`]);
  const deleted = await db.delete('doc', `2-${A}`);
  assert.match(deleted.rev, /^3-/);
  const after = JSON.parse(
    db.get('doc', { conflicts: true, deletedConflicts: true }).toString(),
  ) as Record<string, unknown>;
  assert.equal(after._rev, `2-${B}`, 'the winner is unchanged');
  assert.equal(after._conflicts, undefined);
  assert.deepEqual(after._deleted_conflicts, [deleted.rev]);
});

test('revs_diff request of the API reference', async (t) => {
  const db = await database(t);
  const id = '190f721ca3411be7aa9477db5f948bbb';
  // The database has revision 4-10265e…, but neither 3-bb72… nor 5-067a….
  await db.bulkDocs(
    [replicated(id, { start: 4, ids: ['10265e5a26d807a3cfa459cf1a82ef2e', C, B, A] }, 'stored')],
    { newEdits: false },
  );
  const diff = db.revsDiff([
    [
      id,
      [
        '3-bb72a7682290f94a985f7afac8b27137',
        '4-10265e5a26d807a3cfa459cf1a82ef2e',
        '5-067a00dff5e02add41819138abb3284d',
      ],
    ],
  ]);
  assert.deepEqual(diff, [
    [
      id,
      {
        missing: ['3-bb72a7682290f94a985f7afac8b27137', '5-067a00dff5e02add41819138abb3284d'],
        possible_ancestors: ['4-10265e5a26d807a3cfa459cf1a82ef2e'],
      },
    ],
  ]);
});
