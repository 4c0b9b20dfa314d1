/**
 * The history checks on hand-built histories: a failed write seen in a read or in the final
 * state, an acknowledged write missing from the final revision history, a revision seen with
 * two tokens, and the minimums (operations per document, overlap, fault kinds).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  checkAcknowledgedWritesKept,
  checkFailedWritesInvisible,
  checkLinearizability,
  checkMinimums,
  checkRevisionIdentity,
} from '../../src/chaos/checks.js';
import type { FinalDocument } from '../../src/chaos/final-state.js';
import { ClientHistory, type RequestKind } from '../../src/chaos/history.js';
import type { FaultEvent } from '../../src/chaos/nemesis.js';
import type { DocumentInput, DocumentOutput } from '../../src/check/models/document.js';

/** A history whose clock returns the times the test sets. */
function historyAt(): { history: ClientHistory; at: (ms: number) => void } {
  let now = 0;
  return {
    history: new ClientHistory(() => now),
    at: (ms) => {
      now = ms;
    },
  };
}

function request(
  run: ReturnType<typeof historyAt>,
  client: string,
  kind: RequestKind,
  key: string,
  span: [number, number],
  input: DocumentInput,
  output: DocumentOutput | null,
): number {
  run.at(span[0]);
  const record = run.history.begin(client, 'n1', kind, [key]);
  run.at(span[1]);
  run.history.end(record, output === null ? 'unknown' : 'ok', 'test');
  run.history.addCheckOp(record, key, input, output);
  return record.id;
}

function finalDocument(rev: string, token: string | null, history: string[]): FinalDocument {
  return { rev, deleted: token === null, token, history: new Set(history) };
}

test('failed write seen in a read', () => {
  const run = historyAt();
  const failed = request(
    run,
    'c1.0',
    'create',
    'd1',
    [0, 5],
    { op: 'create', value: 'c1-1' },
    {
      ok: false,
      reason: 'not_applied',
    },
  );
  request(
    run,
    'c2.0',
    'read',
    'd1',
    [10, 15],
    { op: 'read' },
    { found: true, value: 'c1-1', rev: '1-a' },
  );
  const violations = checkFailedWritesInvisible(run.history, new Map());
  assert.equal(violations.length, 1);
  assert.equal(violations[0]!.kind, 'failed_write_visible');
  assert.deepEqual(violations[0]!.requests, [failed, failed + 1]);
  assert.equal(checkLinearizability(run.history, 5_000).violations[0]?.kind, 'linearizability');
});

test('failed write in the final state', () => {
  const run = historyAt();
  request(
    run,
    'c1.0',
    'update',
    'd1',
    [0, 5],
    { op: 'update', expected: 'x', value: 'c1-2' },
    {
      ok: false,
      reason: 'conflict',
    },
  );
  const state = new Map([['d1', finalDocument('2-b', 'c1-2', ['2-b', '1-a'])]]);
  const violations = checkFailedWritesInvisible(run.history, state);
  assert.equal(violations.length, 1);
  assert.equal(violations[0]!.key, 'd1');
});

test('acknowledged write missing from history', () => {
  const run = historyAt();
  request(
    run,
    'c1.0',
    'create',
    'd1',
    [0, 5],
    { op: 'create', value: 'c1-1' },
    { ok: true, rev: '1-a' },
  );
  request(
    run,
    'c1.0',
    'update',
    'd1',
    [10, 15],
    { op: 'update', expected: 'c1-1', value: 'c1-2' },
    {
      ok: true,
      rev: '2-b',
    },
  );
  const kept = new Map([['d1', finalDocument('3-c', 'c2-1', ['3-c', '2-b', '1-a'])]]);
  assert.deepEqual(checkAcknowledgedWritesKept(run.history, kept, 'at the end'), []);
  const lost = new Map([['d1', finalDocument('1-a', 'c1-1', ['1-a'])]]);
  const violations = checkAcknowledgedWritesKept(run.history, lost, 'at the end');
  assert.equal(violations.length, 1);
  assert.equal(violations[0]!.kind, 'lost_write');
  assert.match(violations[0]!.message, /2-b/);
  assert.equal(checkAcknowledgedWritesKept(run.history, new Map(), 'at the end').length, 2);
});

test('revision seen with two tokens', () => {
  const run = historyAt();
  request(
    run,
    'c1.0',
    'create',
    'd1',
    [0, 5],
    { op: 'create', value: 'c1-1' },
    { ok: true, rev: '1-a' },
  );
  request(
    run,
    'c2.0',
    'read',
    'd1',
    [10, 15],
    { op: 'read' },
    { found: true, value: 'c1-1', rev: '1-a' },
  );
  assert.deepEqual(checkRevisionIdentity(run.history), []);
  request(
    run,
    'c3.0',
    'read',
    'd1',
    [20, 25],
    { op: 'read' },
    { found: true, value: 'c3-9', rev: '1-a' },
  );
  const violations = checkRevisionIdentity(run.history);
  assert.equal(violations.length, 1);
  assert.equal(violations[0]!.kind, 'revision_identity');
});

test('minimums count overlap and fault kinds', () => {
  const run = historyAt();
  // Two clients overlap on d1; a third operation on d2 overlaps nothing.
  request(run, 'c1.0', 'read', 'd1', [0, 10], { op: 'read' }, { found: false });
  request(run, 'c2.0', 'read', 'd1', [5, 15], { op: 'read' }, { found: false });
  request(run, 'c1.0', 'read', 'd2', [20, 30], { op: 'read' }, { found: false });
  const event = (kind: FaultEvent['kind'], result: FaultEvent['result']): FaultEvent => ({
    kind,
    targets: [],
    startMs: 0,
    endMs: 1,
    result,
    detail: '',
  });
  const result = checkMinimums(
    run.history.records,
    run.history,
    [event('kill', 'fired'), event('compaction', 'not_available'), event('transfer', 'failed')],
    ['kill', 'compaction', 'transfer', 'pause'],
  );
  assert.equal(result.measured.opsPerDocument, 1.5);
  assert.equal(result.measured.concurrentShare, 2 / 3);
  assert.equal(result.measured.okRequests, 3);
  assert.deepEqual(result.notAvailable, ['compaction']);
  assert.ok(result.shortfalls.includes('fault kind transfer never fired'));
  assert.ok(result.shortfalls.includes('fault kind pause never fired'));
  assert.ok(!result.shortfalls.some((line) => line.includes('compaction')));
  assert.ok(!result.shortfalls.some((line) => line.includes('kill')));
});
