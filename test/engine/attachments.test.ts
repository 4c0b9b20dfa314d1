/**
 * Attachments through the real HTTP server over engine databases (`EngineBackend`): bytes
 * round trip exactly in every form (standalone, inline base64, multipart), digests are CouchDB's
 * `md5-` of the stored bytes, compressible types are stored gzipped, stubs carry an attachment
 * across revisions without storing its bytes again, `Range` and the documented errors answer as
 * CouchDB 3.x does.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { gunzipSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { scaled } from '../support/scale.js';
import { startEngineServer, type TestServer } from './http-server.js';

const ROUND_TRIP_RUNS = scaled(25, 200);
const MAX_RANDOM_BYTES = 64 * 1024;
const LARGE_BYTES = 4 * 1024 * 1024;
const STUB_UPDATES = 5;
/** Bytes a revision with a stub may add to the file: the body, trees and a header. */
const REVISION_OVERHEAD_BYTES = 64 * 1024;

function md5Digest(bytes: Buffer): string {
  return `md5-${createHash('md5').update(bytes).digest('base64')}`;
}

async function createDb(server: TestServer, db: string): Promise<void> {
  assert.equal((await server.send('PUT', `/${db}`)).status, 201);
}

async function putAttachment(
  server: TestServer,
  path: string,
  bytes: Buffer,
  contentType: string,
  rev?: string,
): Promise<string> {
  const query = rev === undefined ? '' : `?rev=${rev}`;
  const reply = await server.send('PUT', `${path}${query}`, bytes, {
    'content-type': contentType,
  });
  assert.equal(reply.status, 201, reply.bytes.toString());
  return reply.json().rev;
}

test('random bytes round trip through every form', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'bin');
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: MAX_RANDOM_BYTES }),
      fc.constantFrom('application/octet-stream', 'text/plain', 'image/png', 'application/json'),
      async (array, contentType) => {
        const bytes = Buffer.from(array);
        const id = `doc-${n++}`;
        const rev = await putAttachment(server, `/bin/${id}/blob`, bytes, contentType);
        const got = await server.send('GET', `/bin/${id}/blob`);
        assert.equal(got.status, 200);
        assert.ok(got.bytes.equals(bytes), 'standalone GET returns the bytes');
        assert.equal(got.headers['content-type'], contentType);

        const doc = (
          await server.send('GET', `/bin/${id}?attachments=true&att_encoding_info=true`)
        ).json();
        const att = doc._attachments.blob;
        assert.equal(doc._rev, rev);
        assert.ok(
          Buffer.from(att.data, 'base64').equals(bytes),
          'inline data decodes to the bytes',
        );
        assert.equal(att.length, undefined, 'inline data has no length, as in CouchDB');
        assert.equal(att.content_type, contentType);
        assert.equal(att.revpos, 1);
        const stored = att.encoding === 'gzip' ? gunzipSync : (b: Buffer) => b;
        if (att.encoding === 'gzip') {
          const raw = await server.send('GET', `/bin/${id}/blob`, undefined, {
            'accept-encoding': 'gzip',
          });
          assert.equal(raw.headers['content-encoding'], 'gzip');
          assert.equal(raw.bytes.length, att.encoded_length);
          assert.ok(stored(raw.bytes).equals(bytes));
          assert.equal(att.digest, md5Digest(raw.bytes), 'digest of the stored bytes');
        } else {
          assert.equal(att.digest, md5Digest(bytes));
        }

        const copy = `copy-${id}`;
        const inline = await server.send('PUT', `/bin/${copy}`, {
          _attachments: { blob: { content_type: contentType, data: bytes.toString('base64') } },
        });
        assert.equal(inline.status, 201);
        const back = await server.send('GET', `/bin/${copy}/blob`);
        assert.ok(back.bytes.equals(bytes), 'inline base64 PUT stores the bytes');
        const copied = (await server.send('GET', `/bin/${copy}`)).json()._attachments.blob;
        assert.equal(copied.digest, att.digest, 'same bytes, same digest');
        assert.equal(copied.stub, true);
      },
    ),
    { numRuns: ROUND_TRIP_RUNS },
  );
});

test('a large attachment is stored once across stub updates', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'big');
  const bytes = Buffer.from(fc.sample(fc.uint8Array({ minLength: 1024, maxLength: 1024 }), 1)[0]!);
  const large = Buffer.concat(
    Array.from({ length: LARGE_BYTES / bytes.length }, (_, i) => {
      const block = Buffer.from(bytes);
      block.writeUInt32BE(i, 0);
      return block;
    }),
  );
  // The database's `sizes.file`: the data's end, without the zeros allocated after it.
  const fileSize = async (): Promise<number> =>
    (await server.send('GET', '/big')).json().sizes.file;
  const before = await fileSize();
  let rev = await putAttachment(server, '/big/doc/large.bin', large, 'application/octet-stream');
  const afterFirst = await fileSize();
  assert.ok(afterFirst - before >= LARGE_BYTES, 'the bytes are in the file');
  for (let i = 0; i < STUB_UPDATES; i++) {
    const current = (await server.send('GET', `/big/doc?rev=${rev}`)).json();
    assert.equal(current._attachments['large.bin'].stub, true);
    const put = await server.send('PUT', '/big/doc', { ...current, n: i });
    assert.equal(put.status, 201, put.bytes.toString());
    rev = put.json().rev;
  }
  const afterUpdates = await fileSize();
  assert.ok(
    afterUpdates - afterFirst < STUB_UPDATES * REVISION_OVERHEAD_BYTES,
    `stub updates grew the file by ${afterUpdates - afterFirst} bytes`,
  );
  const got = await server.send('GET', '/big/doc/large.bin');
  assert.ok(got.bytes.equals(large));
  const doc = (await server.send('GET', '/big/doc')).json();
  assert.equal(doc._attachments['large.bin'].revpos, 1, 'revpos stays that of the upload');
  assert.equal(doc._attachments['large.bin'].digest, md5Digest(large));
  assert.equal(doc.n, STUB_UPDATES - 1);
});

test('names with a slash and Unicode names', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'names');
  const names = ['dir/sub/file.txt', 'ünïcödé ☃.txt', '日本/語'];
  let rev: string | undefined;
  for (const [i, name] of names.entries()) {
    const path = `/names/doc/${name.split('/').map(encodeURIComponent).join('/')}`;
    rev = await putAttachment(server, path, Buffer.from(`bytes ${i}`), 'text/plain', rev);
  }
  const doc = (await server.send('GET', '/names/doc')).json();
  assert.deepEqual(Object.keys(doc._attachments).sort(), [...names].sort());
  for (const [i, name] of names.entries()) {
    const encodedSlash = `/names/doc/${encodeURIComponent(name)}`;
    const got = await server.send('GET', encodedSlash);
    assert.equal(got.status, 200, name);
    assert.equal(got.bytes.toString(), `bytes ${i}`);
  }
  const deleted = await server.send(
    'DELETE',
    `/names/doc/${names[0]!.split('/').map(encodeURIComponent).join('/')}?rev=${rev}`,
  );
  assert.equal(deleted.status, 200);
  const after = (await server.send('GET', '/names/doc')).json();
  assert.deepEqual(Object.keys(after._attachments).sort(), names.slice(1).sort());
  assert.equal(
    (await server.send('GET', `/names/doc/${encodeURIComponent(names[0]!)}`)).status,
    404,
  );
});

test('compressible types are stored gzipped', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'gz');
  const text = Buffer.from('compress me '.repeat(500));
  await putAttachment(server, '/gz/doc/a.txt', text, 'text/plain');
  await putAttachment(server, '/gz/other/a.bin', text, 'application/octet-stream');
  const info = (await server.send('GET', '/gz/doc?att_encoding_info=true')).json()._attachments[
    'a.txt'
  ];
  assert.equal(info.encoding, 'gzip');
  assert.equal(info.length, text.length);
  assert.ok(info.encoded_length < text.length / 10);
  const plain = (await server.send('GET', '/gz/other?att_encoding_info=true')).json()._attachments[
    'a.bin'
  ];
  assert.equal(plain.encoding, undefined, 'octet-stream is not compressible');
  assert.equal(plain.encoded_length, undefined);
  const decoded = await server.send('GET', '/gz/doc/a.txt');
  assert.equal(decoded.headers['content-encoding'], undefined);
  assert.ok(decoded.bytes.equals(text), 'a client that does not accept gzip gets identity');
  const stubs = (await server.send('GET', '/gz/doc')).json()._attachments['a.txt'];
  assert.equal(stubs.encoding, undefined, 'encoding info only when asked for');

  const gzipped = gzipSync(text);
  const sentGzipped = await server.send('PUT', '/gz/sent/a.txt', gzipped, {
    'content-type': 'text/plain',
    'content-encoding': 'gzip',
  });
  assert.equal(sentGzipped.status, 201, sentGzipped.bytes.toString());
  const raw = await server.send('GET', '/gz/sent/a.txt', undefined, { 'accept-encoding': 'gzip' });
  assert.ok(raw.bytes.equals(gzipped), 'gzip sent by the client is stored as sent');
  assert.ok((await server.send('GET', '/gz/sent/a.txt')).bytes.equals(text));

  const md5 = createHash('md5').update(text).digest('base64');
  const checked = await server.send('PUT', '/gz/md5/a.bin', text, {
    'content-type': 'application/octet-stream',
    'content-md5': md5,
  });
  assert.equal(checked.status, 201);
  const corrupt = await server.send('PUT', '/gz/md5/b.bin', Buffer.from('other'), {
    'content-type': 'application/octet-stream',
    'content-md5': md5,
  });
  assert.equal(corrupt.status, 400);
  assert.equal(corrupt.json().error, 'content_md5_mismatch');
});

test('stubs, revpos and atts_since', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'stubs');
  const first = await server.send('PUT', '/stubs/doc', {
    _attachments: {
      a: { content_type: 'application/octet-stream', data: Buffer.from('AAA').toString('base64') },
    },
  });
  const rev1 = first.json().rev;
  const second = await server.send('PUT', '/stubs/doc', {
    _rev: rev1,
    _attachments: {
      a: { stub: true },
      b: { content_type: 'application/octet-stream', data: Buffer.from('BBB').toString('base64') },
    },
  });
  assert.equal(second.status, 201, second.bytes.toString());
  const rev2 = second.json().rev;
  const doc = (await server.send('GET', '/stubs/doc')).json();
  assert.equal(doc._attachments.a.revpos, 1);
  assert.equal(doc._attachments.b.revpos, 2);

  const since = (
    await server.send(
      'GET',
      `/stubs/doc?attachments=true&atts_since=${encodeURIComponent(JSON.stringify([rev1]))}`,
    )
  ).json();
  assert.equal(since._attachments.a.stub, true, 'a client holding rev 1 has a');
  assert.equal(Buffer.from(since._attachments.b.data, 'base64').toString(), 'BBB');

  const dropped = await server.send('PUT', '/stubs/doc', {
    _rev: rev2,
    _attachments: { b: { stub: true } },
  });
  assert.equal(dropped.status, 201);
  const last = (await server.send('GET', '/stubs/doc')).json();
  assert.deepEqual(Object.keys(last._attachments), ['b'], 'an attachment left out is removed');
  const copied = await server.send('COPY', '/stubs/doc', undefined, { destination: 'copy' });
  assert.equal(copied.status, 201);
  assert.equal((await server.send('GET', '/stubs/copy/b')).bytes.toString(), 'BBB');
  // Divan keeps the content of leaf revisions only; CouchDB keeps older ones until compaction.
  assert.equal((await server.send('GET', `/stubs/doc/a?rev=${rev2}`)).status, 404);
});

test('Range requests', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'range');
  const bytes = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
  await putAttachment(server, '/range/doc/r.bin', bytes, 'application/octet-stream');
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 999 }),
      fc.integer({ min: 0, max: 1200 }),
      async (start, span) => {
        const end = start + span;
        const got = await server.send('GET', '/range/doc/r.bin', undefined, {
          range: `bytes=${start}-${end}`,
        });
        const last = Math.min(end, bytes.length - 1);
        if (start === 0 && last === bytes.length - 1) {
          assert.ok(got.status === 200 || got.status === 206);
          assert.ok(got.bytes.equals(bytes));
          return;
        }
        assert.equal(got.status, 206);
        assert.equal(got.headers['content-range'], `bytes ${start}-${last}/${bytes.length}`);
        assert.ok(got.bytes.equals(bytes.subarray(start, last + 1)));
      },
    ),
    { numRuns: scaled(20, 200) },
  );
  const suffix = await server.send('GET', '/range/doc/r.bin', undefined, { range: 'bytes=-10' });
  assert.equal(suffix.status, 206);
  assert.equal(suffix.headers['content-range'], `bytes 990-999/${bytes.length}`);
  assert.ok(suffix.bytes.equals(bytes.subarray(990)));
  const past = await server.send('GET', '/range/doc/r.bin', undefined, { range: 'bytes=5000-' });
  assert.equal(past.status, 416);
});

test('multipart/related PUT and multipart/mixed open_revs', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'multi');
  const one = Buffer.from([0, 1, 2, 255, 13, 10, 45, 45]);
  const two = Buffer.from('second attachment, text');
  const boundary = 'abc123boundary';
  const json = JSON.stringify({
    n: 1,
    _attachments: {
      'one.bin': { follows: true, content_type: 'application/octet-stream', length: one.length },
      'two.txt': { follows: true, content_type: 'text/plain', length: two.length },
    },
  });
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-type: application/json\r\n\r\n${json}\r\n`),
    Buffer.from(`--${boundary}\r\n\r\n`),
    one,
    Buffer.from(`\r\n--${boundary}\r\n\r\n`),
    two,
    Buffer.from(`\r\n--${boundary}--`),
  ]);
  const put = await server.send('PUT', '/multi/doc', body, {
    'content-type': `multipart/related; boundary="${boundary}"`,
  });
  assert.equal(put.status, 201, put.bytes.toString());
  const rev = put.json().rev;
  assert.ok((await server.send('GET', '/multi/doc/one.bin')).bytes.equals(one));
  assert.ok((await server.send('GET', '/multi/doc/two.txt')).bytes.equals(two));

  const mixed = await server.send('GET', `/multi/doc?open_revs=["${rev}"]`, undefined, {
    accept: 'multipart/mixed',
  });
  assert.equal(mixed.status, 200);
  const type = String(mixed.headers['content-type']);
  assert.match(type, /^multipart\/mixed; boundary=/);
  const text = mixed.bytes.toString('latin1');
  assert.match(text, /multipart\/related/);
  assert.ok(mixed.bytes.includes(one), 'the binary attachment is in the reply as is');
  assert.ok(text.includes(`"_rev":"${rev}"`));
  const jsonReply = await server.send('GET', `/multi/doc?open_revs=["${rev}"]`, undefined, {
    accept: 'application/json',
  });
  assert.equal(jsonReply.json()[0].ok._rev, rev);

  const bulk = await server.send(
    'POST',
    '/multi/_bulk_get?attachments=true',
    { docs: [{ id: 'doc', rev }, { id: 'nothere' }] },
    { accept: 'multipart/mixed' },
  );
  assert.equal(bulk.status, 200);
  assert.match(String(bulk.headers['content-type']), /^multipart\/mixed; boundary=/);
  assert.ok(bulk.bytes.includes(one), '_bulk_get sends the attachment bytes as they are');
  assert.match(
    bulk.bytes.toString('latin1'),
    /Content-Encoding: gzip/i,
    'the text attachment follows as stored, gzipped',
  );
  assert.match(bulk.bytes.toString('latin1'), /error="true"/);
});

test('documented attachment errors', async (t) => {
  const server = await startEngineServer(t);
  await createDb(server, 'err');
  const underscore = await server.send('PUT', '/err/doc/_hidden', Buffer.from('x'), {
    'content-type': 'text/plain',
  });
  assert.equal(underscore.status, 400);
  assert.equal(underscore.json().error, 'bad_request');
  const inlineUnderscore = await server.send('PUT', '/err/doc2', {
    _attachments: { _x: { content_type: 'text/plain', data: 'eA==' } },
  });
  assert.equal(inlineUnderscore.status, 400);

  const badBase64 = await server.send('PUT', '/err/doc3', {
    _attachments: { a: { content_type: 'text/plain', data: 'not base64!!' } },
  });
  assert.equal(badBase64.status, 400);
  assert.equal(badBase64.json().error, 'bad_request');

  const missingStub = await server.send('PUT', '/err/doc4', {
    _attachments: { a: { stub: true } },
  });
  assert.equal(missingStub.status, 412);
  assert.equal(missingStub.json().error, 'missing_stub');

  const rev = await putAttachment(server, '/err/doc5/a', Buffer.from('x'), 'text/plain');
  assert.equal((await server.send('GET', '/err/doc5/nope')).status, 404);
  assert.equal((await server.send('GET', '/err/nodoc/a')).status, 404);
  const stale = await server.send(
    'PUT',
    '/err/doc5/b?rev=1-00000000000000000000000000000000',
    Buffer.from('y'),
    {
      'content-type': 'text/plain',
    },
  );
  assert.equal(stale.status, 409);
  assert.equal(stale.json().error, 'conflict');
  const noRev = await server.send('PUT', '/err/doc5/b', Buffer.from('y'), {
    'content-type': 'text/plain',
  });
  assert.equal(noRev.status, 409);
  const deleteMissing = await server.send('DELETE', `/err/doc5/nope?rev=${rev}`);
  assert.equal(deleteMissing.status, 404);
  const stubAfter = await server.send('PUT', '/err/doc5', {
    _rev: rev,
    _attachments: { a: { stub: true }, zz: { stub: true } },
  });
  assert.equal(stubAfter.status, 412);
  assert.equal(stubAfter.json().error, 'missing_stub');
});
