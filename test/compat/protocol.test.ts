/**
 * The replication protocol as a CouchDB 3.x replicator speaks it, request by request, against
 * a real three-node cluster: the calls PouchDB and CouchDB's own replicator make, with the
 * shapes they parse.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster, type TestNode } from '../support/cluster.js';

const DB = 'protocol';

interface Row {
  ok?: Record<string, unknown>;
  missing?: string;
}

test('the replication protocol answers as CouchDB', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(n1, 'PUT', `/${DB}`)).status, 201);
  const first = await cluster.http(n1, 'PUT', `/${DB}/doc`, { v: 1 });
  const rev1 = (first.json as { rev: string }).rev;
  const second = await cluster.http(n2, 'PUT', `/${DB}/doc`, { _rev: rev1, v: 2 });
  const rev2 = (second.json as { rev: string }).rev;

  await t.test('database info has the fields a replicator reads', async () => {
    const info = (await cluster.http(n3, 'GET', `/${DB}`)).json as Record<string, unknown>;
    assert.equal(typeof info.update_seq, 'string');
    assert.equal(info.instance_start_time, '0');
    assert.equal(info.doc_count, 1);
  });

  await t.test('_revs_diff names only the missing revisions', async () => {
    const diff = await cluster.http(n2, 'POST', `/${DB}/_revs_diff`, {
      doc: [rev1, rev2, '3-00000000000000000000000000000000'],
      absent: ['1-11111111111111111111111111111111'],
    });
    assert.equal(diff.status, 200, diff.body);
    assert.deepEqual(diff.json, {
      doc: { missing: ['3-00000000000000000000000000000000'], possible_ancestors: [rev2] },
      absent: { missing: ['1-11111111111111111111111111111111'] },
    });
  });

  await t.test('_bulk_docs with new_edits=false returns only errors', async () => {
    const result = await cluster.http(n3, 'POST', `/${DB}/_bulk_docs`, {
      new_edits: false,
      docs: [
        {
          _id: 'replicated',
          _rev: '2-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb',
          _revisions: {
            start: 2,
            ids: ['bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
          },
          v: 'from a replicator',
        },
      ],
    });
    assert.equal(result.status, 201, result.body);
    assert.deepEqual(result.json, []);
  });

  await t.test('_bulk_get returns each requested revision', async () => {
    const result = await cluster.http(n1, 'POST', `/${DB}/_bulk_get?revs=true`, {
      docs: [
        { id: 'doc', rev: rev2 },
        { id: 'replicated' },
        { id: 'nothing' },
        { id: 'doc', rev: rev1 },
      ],
    });
    assert.equal(result.status, 200, result.body);
    const results = (result.json as { results: { id: string; docs: Row[] }[] }).results;
    assert.deepEqual(
      results.map((entry) => entry.id),
      ['doc', 'replicated', 'nothing', 'doc'],
    );
    assert.equal(results[0]!.docs[0]!.ok?._rev, rev2);
    assert.deepEqual(results[1]!.docs[0]!.ok?._revisions, {
      start: 2,
      ids: ['bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'],
    });
    assert.ok('error' in (results[2]!.docs[0] as object), 'a missing document is an error row');
    // Only leaf bodies are kept, as in a CouchDB database just compacted.
    assert.deepEqual(results[3]!.docs[0], {
      error: { id: 'doc', rev: rev1, error: 'not_found', reason: 'missing' },
    });
  });

  await t.test('open_revs and latest read the leaves', async () => {
    const all = await cluster.http(n2, 'GET', `/${DB}/doc?open_revs=all`, undefined, {
      headers: { accept: 'application/json' },
    });
    assert.equal(all.status, 200, all.body);
    assert.deepEqual(
      (all.json as Row[]).map((row) => row.ok?._rev),
      [rev2],
    );
    const latest = await cluster.http(
      n2,
      'GET',
      `/${DB}/doc?open_revs=${encodeURIComponent(JSON.stringify([rev1]))}&latest=true&revs=true`,
      undefined,
      { headers: { accept: 'application/json' } },
    );
    assert.equal(latest.status, 200, latest.body);
    const rows = latest.json as Row[];
    assert.equal(rows[0]!.ok?._rev, rev2, 'latest=true gives the leaf after the named revision');
    const mixed = await cluster.http(n3, 'GET', `/${DB}/doc?open_revs=all`, undefined, {
      headers: { accept: 'multipart/mixed' },
    });
    assert.equal(mixed.status, 200, mixed.body);
    assert.match(String(mixed.headers['content-type']), /^multipart\/mixed; boundary=/);
    assert.ok(mixed.body.includes(rev2), 'the leaf is a part of the multipart body');
  });

  await t.test('_changes honours since, limit, style and seq_interval', async () => {
    const all = await cluster.http(n1, 'GET', `/${DB}/_changes?style=all_docs`);
    const results = (all.json as { results: { id: string; seq: string }[] }).results;
    assert.deepEqual(results.map((row) => row.id).sort(), ['doc', 'replicated']);
    const limited = await cluster.http(
      n1,
      'GET',
      `/${DB}/_changes?since=${encodeURIComponent(results[0]!.seq)}&limit=1&seq_interval=10`,
    );
    const body = limited.json as { results: { id: string }[]; last_seq: string; pending: number };
    assert.equal(body.results.length, 1);
    assert.equal(body.results[0]!.id, results[1]!.id);
    assert.equal(body.pending, 0);
    const heartbeat = await cluster.http(
      n2,
      'GET',
      `/${DB}/_changes?feed=longpoll&since=now&heartbeat=100&timeout=300`,
    );
    assert.equal(heartbeat.status, 200);
    assert.deepEqual((heartbeat.json as { results: unknown[] }).results, []);
  });

  await t.test('_local documents and _ensure_full_commit', async () => {
    const put = await cluster.http(n3, 'PUT', `/${DB}/_local/replication-id`, { last_seq: '1' });
    assert.equal(put.status, 201, put.body);
    assert.equal((put.json as { rev: string }).rev, '0-1');
    const read = await cluster.http(n1, 'GET', `/${DB}/_local/replication-id`);
    assert.equal((read.json as { last_seq: string }).last_seq, '1');
    const commit = await cluster.http(n2, 'POST', `/${DB}/_ensure_full_commit`, undefined, {
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(commit.status, 201, commit.body);
    assert.deepEqual(commit.json, { ok: true, instance_start_time: '0' });
  });
});
