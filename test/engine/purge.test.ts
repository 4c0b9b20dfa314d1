/**
 * Purge through the real HTTP server over engine databases. The tests cover `_purge` results,
 * the purged document gone from `_all_docs`, `_changes` and `GET /{db}`, and a document that
 * keeps its other leaves. They also cover recreation from scratch, `_purged_infos_limit` and
 * its validation, `purge_seq`, and the kept purge requests trimmed to the limit. A property
 * compares purge outcomes with a model of the leaves each document keeps.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { scaled } from '../support/scale.js';
import { startEngineServer, type TestServer } from './http-server.js';

const LIMIT = 3;
const PURGES = 5;

async function put(server: TestServer, path: string, body: unknown): Promise<string> {
  const reply = await server.send('PUT', path, body);
  assert.equal(reply.status, 201, reply.bytes.toString());
  return reply.json().rev;
}

async function changedIds(server: TestServer, db: string): Promise<string[]> {
  const reply = (await server.send('GET', `/${db}/_changes`)).json();
  return reply.results.map((row: { id: string }) => row.id);
}

function purgeSeqNumber(seq: string): number {
  return Number(seq.split('-')[0]);
}

test('purge removes a document as if never written', async (t) => {
  const server = await startEngineServer(t);
  await server.send('PUT', '/p');
  const rev1 = await put(server, '/p/gone', { n: 1 });
  const rev2 = await put(server, '/p/gone', { _rev: rev1, n: 2 });
  await put(server, '/p/kept', { n: 3 });
  const before = (await server.send('GET', '/p')).json();
  assert.equal(purgeSeqNumber(before.purge_seq), 0);

  const notLeaf = await server.send('POST', '/p/_purge', { gone: [rev1] });
  assert.equal(notLeaf.status, 201);
  assert.deepEqual(notLeaf.json(), { purge_seq: null, purged: { gone: [] } });

  const purged = await server.send('POST', '/p/_purge', { gone: [rev2], missing: ['1-abc'] });
  assert.equal(purged.status, 201);
  assert.deepEqual(purged.json(), { purge_seq: null, purged: { gone: [rev2], missing: [] } });
  assert.equal((await server.send('GET', '/p/gone')).status, 404);
  assert.equal((await server.send('GET', '/p/gone')).json().reason, 'missing');
  assert.deepEqual(await changedIds(server, 'p'), ['kept']);
  const allDocs = (await server.send('GET', '/p/_all_docs')).json();
  assert.deepEqual(
    allDocs.rows.map((row: { id: string }) => row.id),
    ['kept'],
  );
  const info = (await server.send('GET', '/p')).json();
  assert.equal(info.doc_count, 1);
  assert.equal(info.doc_del_count, 0);
  assert.equal(
    purgeSeqNumber(info.purge_seq),
    3,
    'one purge sequence per document of each request',
  );
  assert.ok(
    purgeSeqNumber(info.update_seq) > purgeSeqNumber(before.update_seq),
    'a purge moves the update sequence',
  );

  const recreated = await server.send('PUT', '/p/gone', { n: 'again' });
  assert.equal(recreated.status, 201, 'a purged id is created from scratch, without a rev');
  assert.match(recreated.json().rev, /^1-/);
  const doc = (await server.send('GET', '/p/gone?revs=true')).json();
  assert.equal(doc._revisions.ids.length, 1, 'no history survives the purge');
  assert.deepEqual(await changedIds(server, 'p'), ['kept', 'gone']);
});

test('purging one leaf keeps the others', async (t) => {
  const server = await startEngineServer(t);
  await server.send('PUT', '/c');
  const base = await put(server, '/c/doc', { n: 0 });
  const a = await put(server, '/c/doc', { _rev: base, n: 'a' });
  const conflict = await server.send('POST', '/c/_bulk_docs', {
    new_edits: false,
    docs: [
      {
        _id: 'doc',
        _rev: '2-ffff',
        _revisions: { start: 2, ids: ['ffff', base.slice(2)] },
        n: 'b',
      },
    ],
  });
  assert.equal(conflict.status, 201);
  await put(server, '/c/other', {});
  const winner = (await server.send('GET', '/c/doc?conflicts=true')).json();
  assert.equal(winner._conflicts.length, 1);

  const purged = await server.send('POST', '/c/_purge', { doc: [winner._rev] });
  assert.deepEqual(purged.json().purged, { doc: [winner._rev] });
  const after = (await server.send('GET', '/c/doc?conflicts=true')).json();
  assert.equal(after._rev, winner._conflicts[0]);
  assert.equal(after._conflicts, undefined);
  assert.deepEqual(
    await changedIds(server, 'c'),
    ['other', 'doc'],
    'a document that keeps leaves moves to a new sequence',
  );
  assert.ok([a, '2-ffff'].includes(after._rev));
});

test('purged_infos_limit and the kept purge requests', async (t) => {
  const server = await startEngineServer(t);
  await server.send('PUT', '/lim');
  const got = await server.send('GET', '/lim/_purged_infos_limit');
  assert.equal(got.status, 200);
  assert.equal(got.json(), 1000);
  for (const bad of ['0', '-1', '"3"', '1.5', '{}', 'x']) {
    const reply = await server.send('PUT', '/lim/_purged_infos_limit', bad, {
      'content-type': 'application/json',
    });
    assert.equal(reply.status, 400, bad);
  }
  const set = await server.send('PUT', '/lim/_purged_infos_limit', String(LIMIT), {
    'content-type': 'application/json',
  });
  assert.deepEqual(set.json(), { ok: true });
  assert.equal((await server.send('GET', '/lim/_purged_infos_limit')).json(), LIMIT);

  const revs: Record<string, string> = {};
  for (let i = 0; i < PURGES; i++) revs[`d${i}`] = await put(server, `/lim/d${i}`, { i });
  for (let i = 0; i < PURGES; i++) {
    await server.send('POST', '/lim/_purge', { [`d${i}`]: [revs[`d${i}`]] });
  }
  const infos = (await server.send('GET', '/lim/_purged_infos')).json().purged_infos;
  assert.deepEqual(
    infos,
    Array.from({ length: LIMIT }, (_, k) => {
      const i = PURGES - LIMIT + k;
      return { id: `d${i}`, revs: [revs[`d${i}`]] };
    }),
    'the newest requests are kept, oldest first',
  );
  assert.equal(purgeSeqNumber((await server.send('GET', '/lim')).json().purge_seq), PURGES);
  assert.equal((await server.send('GET', '/nodb/_purged_infos_limit')).status, 404);
  assert.equal((await server.send('POST', '/lim/_purge', { x: 'notalist' })).status, 400);
});

test('purge matches a model of the kept leaves', async (t) => {
  const server = await startEngineServer(t);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }),
      fc.array(fc.nat(), { maxLength: 4 }),
      async (branches, picks) => {
        const db = `m${n++}`;
        await server.send('PUT', `/${db}`);
        const root = await put(server, `/${db}/doc`, { root: true });
        const leaves = new Set<string>();
        for (const [i, live] of branches.entries()) {
          const id = `${i}`.padStart(4, '0');
          const rev = `2-${id}`;
          await server.send('POST', `/${db}/_bulk_docs`, {
            new_edits: false,
            docs: [
              {
                _id: 'doc',
                _rev: rev,
                _revisions: { start: 2, ids: [id, root.slice(2)] },
                _deleted: !live,
              },
            ],
          });
          leaves.add(rev);
        }
        const targets = [...new Set(picks.map((p) => [...leaves][p % leaves.size]!))];
        const reply = (
          await server.send('POST', `/${db}/_purge`, { doc: [...targets, root] })
        ).json();
        assert.deepEqual([...reply.purged.doc].sort(), [...targets].sort(), 'the root is no leaf');
        for (const target of targets) leaves.delete(target);
        const found = await server.send('GET', `/${db}/doc?open_revs=all`, undefined, {
          accept: 'application/json',
        });
        if (leaves.size === 0) {
          assert.equal((await server.send('GET', `/${db}/doc`)).status, 404);
          assert.deepEqual(await changedIds(server, db), []);
          return;
        }
        const kept = found.json().map((row: { ok: { _rev: string } }) => row.ok._rev);
        assert.deepEqual(kept.sort(), [...leaves].sort());
        assert.deepEqual(await changedIds(server, db), ['doc']);
      },
    ),
    { numRuns: scaled(15, 100) },
  );
});
