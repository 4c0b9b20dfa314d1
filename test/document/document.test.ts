import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { validateDocId } from '../../src/document/doc-id.js';
import { parseDocument, requireReplicatedRevisions } from '../../src/document/document.js';
import { scanJson } from '../../src/document/json.js';
import { renderDocument } from '../../src/document/render.js';
import { NO_REVISIONS } from '../../src/document/rev.js';
import { CouchError } from '../../src/util/couch-error.js';
import { scaled } from '../support/scale.js';

const RUNS = scaled(500, 10000);
const HEX = '0123456789abcdef0123456789abcdef';

function parse(text: string, options = {}) {
  return parseDocument(Buffer.from(text), options);
}

function expectError(action: () => unknown, status: number, error: string, reason: string): void {
  assert.throws(action, (thrown: unknown) => {
    assert.ok(thrown instanceof CouchError, `expected a CouchError, got ${String(thrown)}`);
    assert.equal(thrown.status, status);
    assert.equal(thrown.error, error);
    assert.equal(thrown.reason, reason);
    return true;
  });
}

test('document rejections match CouchDB', () => {
  const cases: [string, number, string, string][] = [
    ['not json', 400, 'bad_request', 'invalid UTF-8 JSON'],
    ['[1]', 400, 'bad_request', 'Document must be a JSON object'],
    ['{"_id":1}', 400, 'illegal_docid', 'Document id must be a string'],
    ['{"_id":null}', 400, 'illegal_docid', 'Document id must be a string'],
    ['{"_id":""}', 400, 'illegal_docid', 'Document id must not be empty'],
    ['{"_id":"_design/"}', 400, 'illegal_docid', 'Illegal document id `_design/`'],
    ['{"_id":"_local/"}', 400, 'illegal_docid', 'Illegal document id `_local/`'],
    [
      '{"_id":"_users"}',
      400,
      'illegal_docid',
      'Only reserved document ids may start with underscore.',
    ],
    ['{"_rev":5}', 400, 'bad_request', 'Invalid rev format'],
    ['{"_rev":null}', 400, 'bad_request', 'Invalid rev format'],
    ['{"_rev":"abc"}', 400, 'bad_request', 'Invalid rev format'],
    ['{"_rev":"x-abc"}', 400, 'bad_request', 'Invalid rev format'],
    ['{"_rev":"-1-abc"}', 400, 'bad_request', 'Invalid rev format'],
    [`{"_rev":"1-${'z'.repeat(32)}"}`, 400, 'bad_request', 'Invalid rev format'],
    ['{"_deleted":"true"}', 400, 'doc_validation', 'Bad special document member: _deleted'],
    ['{"_deleted":null}', 400, 'doc_validation', 'Bad special document member: _deleted'],
    ['{"_attachments":[]}', 400, 'doc_validation', 'Bad special document member: _attachments'],
    ['{"_revisions":[]}', 400, 'doc_validation', 'Bad special document member: _revisions'],
    [
      '{"_revisions":{"start":"1","ids":["a"]}}',
      400,
      'doc_validation',
      "_revisions.start isn't an integer.",
    ],
    [
      '{"_revisions":{"start":1.0,"ids":["a"]}}',
      400,
      'doc_validation',
      "_revisions.start isn't an integer.",
    ],
    [
      '{"_revisions":{"start":1e0,"ids":["a"]}}',
      400,
      'doc_validation',
      "_revisions.start isn't an integer.",
    ],
    ['{"_revisions":{"ids":["a"]}}', 400, 'doc_validation', "_revisions.start isn't an integer."],
    ['{"_revisions":{"start":1}}', 400, 'doc_validation', "_revisions.ids isn't a array."],
    [
      '{"_revisions":{"start":1,"ids":"a"}}',
      400,
      'doc_validation',
      "_revisions.ids isn't a array.",
    ],
    ['{"_revisions":{"start":1,"ids":[1]}}', 400, 'doc_validation', "RevId isn't a string"],
    [
      `{"_revisions":{"start":1,"ids":["${'g'.repeat(32)}"]}}`,
      400,
      'doc_validation',
      "RevId isn't a valid hexadecimal",
    ],
    [
      '{"_revisions":{"start":1,"ids":["b","a"]}}',
      400,
      'doc_validation',
      '_revisions.start is less than the number of revision ids.',
    ],
    ['{"_foo":1}', 400, 'doc_validation', 'Bad special document member: _foo'],
    ['{"_access":[]}', 400, 'doc_validation', 'Bad special document member: _access'],
    ['{"_":1}', 400, 'doc_validation', 'Bad special document member: _'],
    ['{"\\u005fbad":1}', 400, 'doc_validation', 'Bad special document member: _bad'],
  ];
  for (const [text, status, error, reason] of cases) {
    expectError(() => parse(text), status, error, reason);
  }
});

test('first bad member decides the error', () => {
  expectError(
    () => parse('{"_foo":1,"_id":""}'),
    400,
    'doc_validation',
    'Bad special document member: _foo',
  );
  expectError(
    () => parse('{"_id":"","_foo":1}'),
    400,
    'illegal_docid',
    'Document id must not be empty',
  );
});

test('ignored special members are dropped', () => {
  const doc = parse(
    '{"a":1,"_conflicts":["x"],"_deleted_conflicts":7,"_revs_info":null,"_local_seq":"q","b":2}',
  );
  assert.equal(doc.body.toString(), '{"a":1,"b":2}');
  assert.deepEqual(doc.revisions, NO_REVISIONS);
  assert.equal(doc.deleted, false);
});

test('replication members stay in body', () => {
  const text =
    '{"_replication_state":"completed","_replication_state_time":"t",' +
    '"_replication_state_reason":"r","_replication_id":"i","_replication_stats":{},"x":1}';
  assert.equal(parse(text).body.toString(), text);
});

test('special members are parsed', () => {
  const doc = parse(
    `{"_id":"doc","a":[1, 2],"_rev":"3-${HEX.toUpperCase()}","_deleted":true,"z":{"y":null}}`,
  );
  assert.equal(doc.id, 'doc');
  assert.equal(doc.kind, 'normal');
  assert.deepEqual(doc.revisions, { start: 3, ids: [HEX] });
  assert.equal(doc.deleted, true);
  assert.equal(doc.attachments, null);
  assert.equal(doc.body.toString(), '{"a":[1,2],"z":{"y":null}}');
});

test('rev and revisions follow member order', () => {
  assert.deepEqual(parse('{"_rev":"1-a","_rev":"garbage"}').revisions, { start: 1, ids: ['a'] });
  assert.deepEqual(parse('{"_revisions":{"start":2,"ids":["b","a"]},"_rev":"x"}').revisions, {
    start: 2,
    ids: ['b', 'a'],
  });
  assert.deepEqual(parse('{"_rev":"1-a","_revisions":{"start":3,"ids":["c","b","a"]}}').revisions, {
    start: 3,
    ids: ['c', 'b', 'a'],
  });
  assert.deepEqual(parse('{"_revisions":{"start":0,"ids":[]},"_rev":"4-d"}').revisions, {
    start: 4,
    ids: ['d'],
  });
  assert.equal(parse('{"_id":"a","_id":"b"}').id, 'b');
  assert.equal(parse('{"_deleted":true,"_deleted":false}').deleted, false);
});

test('revision ids take canonical form', () => {
  const sixteen = 'abcdefghijklmnop';
  const doc = parse(
    `{"_revisions":{"start":3,"ids":["${HEX.toUpperCase()}","${sixteen}","short"]}}`,
  );
  assert.deepEqual(doc.revisions.ids, [HEX, Buffer.from(sixteen).toString('hex'), 'short']);
  assert.deepEqual(parse('{"_rev":"1-"}').revisions, { start: 1, ids: [''] });
  assert.deepEqual(parse('{"_rev":"+01-a-b"}').revisions, { start: 1, ids: ['a-b'] });
});

test('document kinds follow id prefixes', () => {
  assert.equal(parse('{"_id":"_design/x"}').kind, 'design');
  assert.equal(parse('{"_id":"_local/x"}').kind, 'local');
  assert.equal(parse('{"_id":"x"}').kind, 'normal');
  assert.equal(parse('{}').kind, null);
  assert.equal(parse('{}').id, null);
});

test('body bytes survive unchanged', () => {
  const members =
    '"big":123456789012345678901234567890,"neg":-0,"exp":1E+400,"frac":1.50,' +
    '"esc":"\\u00e9\\/\\"","keys":{"b":1,"a":2,"1":3}';
  const doc = parse(`{ "_id" : "x",\n ${members.replaceAll(',', ' ,\t')} }`);
  assert.equal(doc.body.toString(), `{${members}}`);
});

test('document size limit counts stored body', () => {
  const body = '{"a":"xxxxxxxx"}';
  const withSpecials = `{"_id":"long-id","_rev":"1-a",${body.slice(1)}`;
  assert.equal(parse(withSpecials, { maxDocumentSize: body.length }).body.toString(), body);
  expectError(
    () => parse(withSpecials, { maxDocumentSize: body.length - 1 }),
    413,
    'document_too_large',
    'long-id',
  );
  expectError(() => parse(body, { maxDocumentSize: 2 }), 413, 'document_too_large', '');
});

test('attachments are recognised', () => {
  const doc = parse(
    '{"_attachments":{' +
      '"a.txt":{"stub":true,"content_type":"text/plain","digest":"md5-x","length":3,"revpos":1},' +
      '"b.bin":{"data":"AAEC","content_type":"application/octet-stream"},' +
      '"c":{"follows":true,"length":9,"encoding":"gzip"},' +
      '"skipped":5},"x":1}',
  );
  assert.equal(doc.body.toString(), '{"x":1}');
  assert.ok(doc.attachments !== null);
  assert.equal(
    doc.attachments.raw.toString(),
    '{"a.txt":{"stub":true,"content_type":"text/plain","digest":"md5-x","length":3,' +
      '"revpos":1},"b.bin":{"data":"AAEC","content_type":"application/octet-stream"},' +
      '"c":{"follows":true,"length":9,"encoding":"gzip"},"skipped":5}',
  );
  assert.deepEqual(doc.attachments.entries, [
    {
      name: 'a.txt',
      kind: 'stub',
      contentType: 'text/plain',
      digest: 'md5-x',
      length: 3,
      revpos: 1,
      encoding: null,
      data: null,
    },
    {
      name: 'b.bin',
      kind: 'inline',
      contentType: 'application/octet-stream',
      digest: null,
      length: null,
      revpos: null,
      encoding: null,
      data: 'AAEC',
    },
    {
      name: 'c',
      kind: 'follows',
      contentType: null,
      digest: null,
      length: 9,
      revpos: null,
      encoding: 'gzip',
      data: null,
    },
  ]);
});

test('scanned bulk element parses', () => {
  const bulk = Buffer.from('{"docs":[{"_id":"a","v":1},{"_id":"b"}]}');
  const docs = scanJson(bulk).members[0]!;
  const array = scanJson(bulk, { start: docs.valueStart, end: docs.end });
  const parsed = array.elements.map((span) =>
    parseDocument(scanJson(bulk, { start: span.start, end: span.end })),
  );
  assert.deepEqual(
    parsed.map((doc) => [doc.id, doc.body.toString()]),
    [
      ['a', '{"v":1}'],
      ['b', '{}'],
    ],
  );
});

test('replicated documents need revisions', () => {
  const reason = 'When `new_edits: false`, the document needs `_rev` or `_revisions` specified';
  const check = (text: string) => requireReplicatedRevisions(parse(text).revisions, 'normal');
  expectError(() => check('{"a":1}'), 400, 'bad_request', reason);
  expectError(() => check('{"_revisions":{"start":3,"ids":[]}}'), 400, 'bad_request', reason);
  expectError(() => check('{"_rev":"0-a"}'), 400, 'bad_request', 'Invalid rev format');
  check('{"_rev":"1-a"}');
  requireReplicatedRevisions(parse('{"_rev":"0-1"}').revisions, 'local');
});

test('document ids validate like CouchDB', () => {
  assert.equal(validateDocId('_design/x'), '_design/x');
  assert.equal(validateDocId('_local/x'), '_local/x');
  assert.equal(validateDocId('é😀'), 'é😀');
  assert.equal(validateDocId(Buffer.from('caf\u00e9')), 'café');
  const illegal = (id: unknown, reason: string, options = {}) =>
    expectError(() => validateDocId(id, options), 400, 'illegal_docid', reason);
  illegal(Uint8Array.of(0x61, 0xff), 'Document id must be valid UTF-8');
  illegal('a\ud800', 'Document id must be valid UTF-8');
  illegal(new Uint8Array(0), 'Document id must not be empty');
  illegal(['x'], 'Document id must be a string');
  illegal('abcd', 'Document id is too long', { maxIdLength: 3 });
  illegal('é', 'Document id is too long', { maxIdLength: 1 });
  illegal('_design', 'Only reserved document ids may start with underscore.');
  assert.equal(validateDocId('abc', { maxIdLength: 3 }), 'abc');
});

test('render puts members in CouchDB order', () => {
  const body = Buffer.from('{"a":1}');
  const rendered = renderDocument(body, {
    id: 'x"y',
    rev: { pos: 3, id: 'c' },
    deleted: true,
    revisions: { start: 3, ids: ['c', 'b'] },
    revsInfo: [
      { rev: { pos: 3, id: 'c' }, status: 'deleted' },
      { rev: { pos: 2, id: 'b' }, status: 'missing' },
    ],
    conflicts: [{ pos: 2, id: 'z' }],
    deletedConflicts: [{ pos: 1, id: 'q' }],
    localSeq: 12,
    attachments: '{"f":{"stub":true}}',
  });
  assert.equal(
    rendered.toString(),
    '{"_id":"x\\"y","_rev":"3-c","a":1,"_deleted":true,"_revisions":{"start":3,"ids":["c","b"]},' +
      '"_revs_info":[{"rev":"3-c","status":"deleted"},{"rev":"2-b","status":"missing"}],' +
      '"_conflicts":["2-z"],"_deleted_conflicts":["1-q"],"_local_seq":12,' +
      '"_attachments":{"f":{"stub":true}}}',
  );
  assert.equal(
    renderDocument(Buffer.from('{}'), { id: '_local/c', rev: '0-4', conflicts: [] }).toString(),
    '{"_id":"_local/c","_rev":"0-4"}',
  );
});

test('parse then render restores the document', () => {
  const plain = fc
    .dictionary(
      fc.string().filter((key) => !key.startsWith('_')),
      fc.jsonValue(),
      { maxKeys: 6 },
    )
    .map((object) => JSON.parse(JSON.stringify(object)) as Record<string, unknown>);
  fc.assert(
    fc.property(plain, fc.string({ minLength: 1 }), fc.boolean(), (object, id, deleted) => {
      fc.pre(!id.startsWith('_'));
      const input = { _id: id, _rev: `2-${HEX}`, ...object, _deleted: deleted };
      const doc = parseDocument(Buffer.from(JSON.stringify(input, null, 1)));
      const rendered = renderDocument(doc.body, {
        id: doc.id!,
        rev: { pos: doc.revisions.start, id: doc.revisions.ids[0]! },
        deleted: doc.deleted,
      });
      const expected: Record<string, unknown> = { _id: id, _rev: `2-${HEX}`, ...object };
      if (deleted) expected._deleted = true;
      assert.deepEqual(JSON.parse(rendered.toString()), expected);
    }),
    { numRuns: RUNS },
  );
});
