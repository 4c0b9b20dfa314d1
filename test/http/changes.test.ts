import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN_AUTH, assertError, listen, seed, startServer, type TestServer } from './harness.js';

/** What nano's `changesReader.spool` reads from a normal or longpoll body, line by line. */
interface SpooledFeed {
  readonly changes: {
    seq: string | null;
    id: string;
    changes: { rev: string }[];
    deleted?: boolean;
    // biome-ignore lint/suspicious/noExplicitAny: documents of any shape are checked field by field
    doc?: any;
  }[];
  readonly lastSeq: string | null;
}

function spool(body: string): SpooledFeed {
  const changes: SpooledFeed['changes'][number][] = [];
  let lastSeq: string | null = null;
  for (const rawLine of body.split('\n')) {
    const line = rawLine.replace(/\r$/, '');
    if (line === '' || line === '{"results":[' || line === '],') continue;
    const last = /"last_seq":"?([^",}]+)"?/.exec(line);
    if (line.startsWith('"last_seq"') && last !== null) {
      lastSeq = last[1]!;
      continue;
    }
    changes.push(JSON.parse(line.replace(/,$/, '')));
  }
  return { changes, lastSeq };
}

async function withDocs(t: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const server = await startServer(t);
  t.after(() => assert.equal(server.backend.openSnapshots, 0, 'snapshots left open'));
  await seed(server, 'db', [
    { _id: 'a', v: 1 },
    { _id: 'b', v: 2 },
    { _id: 'c', v: 3 },
  ]);
  return server;
}

test('normal feed layout', async (t) => {
  const server = await withDocs(t);
  const response = await server.request('GET', '/db/_changes');
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['content-type'], 'application/json');
  const lines = response.body.split('\n');
  assert.equal(lines[0], '{"results":[');
  assert.match(
    lines[1]!,
    /^\{"seq":"1-mem","id":"a","changes":\[\{"rev":"1-[0-9a-f]{32}"\}\]\},\r$/,
  );
  assert.equal(lines[4], '],');
  assert.equal(lines[5], '"last_seq":"3-mem","pending":0}');
  assert.equal(lines[6], '');
  const feed = spool(response.body);
  assert.deepEqual(
    feed.changes.map((change) => change.id),
    ['a', 'b', 'c'],
  );
  assert.equal(feed.lastSeq, '3-mem');

  const empty = await server.request('GET', '/db/_changes?since=now');
  assert.equal(empty.body, '{"results":[\n\n],\n"last_seq":"3-mem","pending":0}\n');
  assertError(
    await server.request('GET', '/missing/_changes'),
    404,
    'not_found',
    'Database does not exist.',
  );
});

test('normal feed options', async (t) => {
  const server = await withDocs(t);
  const a = await server.json('GET', '/db/a', 200);
  await server.json('PUT', '/db/a', 201, { body: { _rev: a._rev, v: 10 } });
  await server.json('POST', '/db/_bulk_docs', 201, {
    body: {
      docs: [{ _id: 'b', _revisions: { start: 2, ids: ['f'.repeat(32), 'e'.repeat(32)] } }],
      new_edits: false,
    },
  });
  const c = await server.json('GET', '/db/c', 200);
  await server.json('DELETE', `/db/c?rev=${c._rev}`, 200);

  const feed = async (query: string, options = {}): Promise<SpooledFeed> =>
    spool((await server.request('GET', `/db/_changes${query}`, options)).body);
  assert.deepEqual(
    (await feed('')).changes.map((change) => change.id),
    ['a', 'b', 'c'],
  );
  const limited = await feed('?limit=1');
  assert.equal(limited.changes.length, 1);
  const limitedBody = JSON.parse((await server.request('GET', '/db/_changes?limit=1')).body);
  assert.equal(limitedBody.pending, 2);
  assert.deepEqual(
    (await feed(`?since=${limited.lastSeq}`)).changes.map((change) => change.id),
    ['b', 'c'],
  );
  assert.deepEqual(
    (await feed('?descending=true')).changes.map((change) => change.id),
    ['c', 'b', 'a'],
  );

  const deleted = (await feed('')).changes[2]!;
  assert.equal(deleted.deleted, true);
  const allDocs = await feed('?style=all_docs');
  assert.equal(allDocs.changes[1]!.changes.length, 2, 'the replicated branch is a second leaf');
  const docsFeed = await feed('?include_docs=true&conflicts=true');
  assert.equal(docsFeed.changes[0]!.doc.v, 10);
  assert.equal(docsFeed.changes[1]!.doc._conflicts.length, 1);
  assert.equal(docsFeed.changes[2]!.doc._deleted, true);

  const zero = JSON.parse((await server.request('GET', '/db/_changes?limit=0')).body);
  assert.deepEqual(zero, { results: [], last_seq: '0-mem', pending: 3 });
  const interval = await feed('?seq_interval=2');
  assert.deepEqual(
    interval.changes.map((change) => change.seq),
    [null, interval.changes[1]!.seq, null],
  );
  assert.ok(interval.changes[1]!.seq !== null);
});

test('changes filters', async (t) => {
  const server = await withDocs(t);
  const ids = async (url: string, body?: unknown) =>
    spool(
      (await server.request(body === undefined ? 'GET' : 'POST', url, { body })).body,
    ).changes.map((change) => change.id);
  assert.deepEqual(
    await ids(`/db/_changes?filter=_doc_ids&doc_ids=${encodeURIComponent('["c","a"]')}`),
    ['a', 'c'],
  );
  assert.deepEqual(await ids('/db/_changes?filter=_doc_ids', { doc_ids: ['b'] }), ['b']);
  assert.deepEqual(await ids('/db/_changes?filter=_selector', { selector: { v: { $gte: 2 } } }), [
    'b',
    'c',
  ]);
  assert.deepEqual(
    await ids('/db/_changes?filter=_selector&limit=1', { selector: { v: { $gte: 2 } } }),
    ['b'],
  );
  assert.deepEqual(await ids('/db/_changes?filter=_design'), []);
  assertError(await server.request('GET', '/db/_changes?filter=_doc_ids'), 400, 'bad_request');
  assertError(
    await server.request('POST', '/db/_changes?filter=_selector', { body: {} }),
    400,
    'bad_request',
    'Selector must be specified in POST payload',
  );
  assertError(await server.request('GET', '/db/_changes?filter=app/by_type'), 400, 'bad_request');
  assertError(await server.request('GET', '/db/_changes?feed=bogus'), 400, 'bad_request');
  assertError(await server.request('GET', '/db/_changes?style=x'), 400, 'bad_request');
  assertError(await server.request('GET', '/db/_changes?since=bogus'), 400, 'invalid_since_seq');
});

test('longpoll ends at timeout without heartbeat', async (t) => {
  const server = await withDocs(t);
  const body = (await server.request('GET', '/db/_changes?feed=longpoll&since=now&timeout=50'))
    .body;
  assert.equal(body, '{"results":[\n\n\n],\n"last_seq":"3-mem","pending":0}\n');
  const immediate = spool(
    (await server.request('GET', '/db/_changes?feed=longpoll&since=1-mem')).body,
  );
  assert.deepEqual(
    immediate.changes.map((change) => change.id),
    ['b', 'c'],
  );
  assert.equal(server.backend.waiterCount, 0);
});

test('longpoll wakes on a write over a socket', async (t) => {
  const server = await withDocs(t);
  const base = await listen(server);
  const pending = fetch(`${base}/db/_changes?feed=longpoll&since=now&heartbeat=20`, {
    headers: { authorization: ADMIN_AUTH },
  });
  while (server.backend.waiterCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  await new Promise((resolve) => setTimeout(resolve, 60));
  await server.json('PUT', '/db/new', 201, { body: {} });
  const response = await pending;
  const text = await response.text();
  const feed = spool(text);
  assert.deepEqual(
    feed.changes.map((change) => change.id),
    ['new'],
  );
  assert.equal(feed.lastSeq, '4-mem');
  assert.ok(text.startsWith('{"results":[\n\n\n'), 'a waiting newline and at least one heartbeat');
});

/** Reads a streamed body until `done` reports it has enough, then cancels the request. */
async function readUntil(
  url: string,
  done: (text: string) => boolean,
): Promise<{ text: string; headers: Headers }> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: ADMIN_AUTH },
    signal: controller.signal,
  });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!done(text)) {
    const { value, done: ended } = await reader.read();
    if (ended) break;
    text += decoder.decode(value, { stream: true });
  }
  controller.abort();
  return { text, headers: response.headers };
}

test('continuous feed streams lines', async (t) => {
  const server = await withDocs(t);
  const base = await listen(server);
  const reading = readUntil(
    `${base}/db/_changes?feed=continuous&heartbeat=20`,
    (text) => text.includes('"id":"d"') && /\n\n$/.test(text),
  );
  while (server.backend.waiterCount === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  await server.json('PUT', '/db/d', 201, { body: {} });
  const { text, headers } = await reading;
  assert.equal(headers.get('content-type'), 'application/json');
  const rows = text
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line));
  assert.deepEqual(
    rows.map((row) => row.id),
    ['a', 'b', 'c', 'd'],
  );
  while (server.backend.waiterCount > 0) await new Promise((resolve) => setTimeout(resolve, 5));

  const ended = await server.request('GET', '/db/_changes?feed=continuous&limit=2');
  const endedLines = ended.body.split('\n');
  assert.equal(endedLines.length, 4);
  assert.deepEqual(JSON.parse(endedLines[2]!), { last_seq: '2-mem', pending: 2 });
  const timedOut = await server.request('GET', '/db/_changes?feed=continuous&since=now&timeout=30');
  assert.equal(timedOut.body, '{"last_seq":"4-mem","pending":0}\n');
});

test('eventsource feed', async (t) => {
  const server = await withDocs(t);
  const base = await listen(server);
  const { text, headers } = await readUntil(
    `${base}/db/_changes?feed=eventsource&heartbeat=20`,
    (body) => body.includes('event: heartbeat'),
  );
  assert.equal(headers.get('content-type'), 'text/event-stream');
  const first = text.split('\n\n')[0]!;
  assert.match(first, /^data: \{"seq":"1-mem","id":"a",.*\}\nid: "1-mem"$/);
  assert.ok(text.includes('event: heartbeat\ndata: \n\n'));
  while (server.backend.waiterCount > 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const resumed = await readUntil(`${base}/db/_changes?feed=eventsource&timeout=30`, () => false);
  assert.equal(resumed.text.split('\n\n').filter((event) => event !== '').length, 3);
});

test('client disconnect ends a waiting feed', async (t) => {
  const server = await withDocs(t);
  const base = await listen(server);
  await readUntil(`${base}/db/_changes?feed=longpoll&since=now&heartbeat=1000`, (text) =>
    text.includes('\n'),
  );
  const deadline = Date.now() + 10_000;
  while (server.backend.waiterCount > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  assert.equal(server.backend.waiterCount, 0);
});
