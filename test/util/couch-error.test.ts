import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CouchError, errors, isCouchError } from '../../src/util/couch-error.js';

test('conflict error matches CouchDB', () => {
  const error = errors.conflict();
  assert.ok(isCouchError(error));
  assert.equal(error.status, 409);
  assert.deepEqual(error.toJSON(), { error: 'conflict', reason: 'Document update conflict.' });
});

test('plain errors are not CouchErrors', () => {
  assert.equal(isCouchError(new Error('boom')), false);
  assert.ok(new CouchError(400, 'bad_request', 'x') instanceof Error);
});
