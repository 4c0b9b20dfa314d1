/**
 * The document model under the checker: histories produced by a sequential reference of a
 * document are linearizable however their intervals are widened and whichever writes lose
 * their outcome; a stale read, a read of a failed write and a lost acknowledged write are not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { checkHistory } from '../../src/check/check.js';
import type { Operation } from '../../src/check/model.js';
import {
  type DocumentInput,
  type DocumentOutput,
  documentModel,
} from '../../src/check/models/document.js';

type Op = Operation<DocumentInput, DocumentOutput>;

/** One step of a client script: which operation, and whether its outcome gets lost. */
interface Step {
  readonly kind: 'read' | 'create' | 'update' | 'stale-update' | 'delete';
  readonly lost: boolean;
  readonly widenBefore: number;
  readonly widenAfter: number;
}

const stepArbitrary: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom('read', 'create', 'update', 'stale-update', 'delete'),
  lost: fc.boolean(),
  widenBefore: fc.integer({ min: 0, max: 30 }),
  widenAfter: fc.integer({ min: 0, max: 30 }),
});

/**
 * Runs `steps` one after the other against a reference document and records what a client
 * would have seen: each operation at times [10i, 10i + 5], then widened.
 */
function sequentialHistory(steps: readonly Step[]): Op[] {
  let current: string | null = null;
  const seen: string[] = [];
  const ops: Op[] = [];
  steps.forEach((step, i) => {
    const token = `t${i}`;
    const call = 10 * i - step.widenBefore;
    const end = 10 * i + 5 + step.widenAfter;
    const push = (input: DocumentInput, output: DocumentOutput) => {
      const lost = step.lost && input.op !== 'read';
      ops.push({
        client: i,
        key: 'doc',
        input,
        output: lost ? null : output,
        call,
        return: lost ? null : end,
      });
    };
    switch (step.kind) {
      case 'read':
        push(
          { op: 'read' },
          current === null
            ? { found: false }
            : { found: true, value: current, rev: `r-${current}` },
        );
        return;
      case 'create': {
        const ok = current === null;
        if (ok) {
          current = token;
          seen.push(token);
        }
        push({ op: 'create', value: token }, ok ? { ok: true, rev: `r-${token}` } : conflict());
        return;
      }
      case 'update':
      case 'stale-update': {
        const expected = step.kind === 'update' ? (current ?? 'none') : (seen[0] ?? 'none');
        const ok = current !== null && current === expected;
        if (ok) {
          current = token;
          seen.push(token);
        }
        push(
          { op: 'update', expected, value: token },
          ok ? { ok: true, rev: `r-${token}` } : conflict(),
        );
        return;
      }
      case 'delete': {
        const expected = current ?? 'none';
        const ok = current !== null;
        if (ok) current = null;
        push({ op: 'delete', expected }, ok ? { ok: true, rev: `r-del${i}` } : conflict());
        return;
      }
    }
  });
  return ops;
}

function conflict(): DocumentOutput {
  return { ok: false, reason: 'conflict' };
}

function check(ops: readonly Op[]) {
  return checkHistory(documentModel, { ops }, { budgetMs: 5_000 }).outcome;
}

test('document model accepts sequential histories', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { maxLength: 25 }), (steps) => {
      assert.equal(check(sequentialHistory(steps)), 'linearizable');
    }),
    { numRuns: 300 },
  );
});

test('document model rejects a stale read', () => {
  fc.assert(
    fc.property(fc.array(stepArbitrary, { maxLength: 15 }), (prefix) => {
      const steps: Step[] = prefix.map((step) => ({
        ...step,
        lost: false,
        widenBefore: 0,
        widenAfter: 0,
      }));
      const ops = sequentialHistory([
        ...steps,
        { kind: 'create', lost: false, widenBefore: 0, widenAfter: 0 },
        { kind: 'read', lost: false, widenBefore: 0, widenAfter: 0 },
        { kind: 'update', lost: false, widenBefore: 0, widenAfter: 0 },
      ]);
      const update = ops.at(-1)!;
      const before = ops.at(-2)!.output;
      fc.pre(update.output !== null && 'ok' in update.output && update.output.ok);
      // A read strictly after the acknowledged update that still returns the value before it.
      const at = (update.return ?? 0) + 10;
      ops.push({
        client: 'late',
        key: 'doc',
        input: { op: 'read' },
        output: before,
        call: at,
        return: at + 1,
      });
      assert.equal(check(ops), 'not_linearizable');
    }),
    { numRuns: 100 },
  );
});

test('document model rejects a visible failed write', () => {
  const ops: Op[] = [
    {
      client: 1,
      key: 'doc',
      input: { op: 'create', value: 'a' },
      output: { ok: true, rev: '1-a' },
      call: 0,
      return: 5,
    },
    {
      client: 2,
      key: 'doc',
      input: { op: 'update', expected: 'a', value: 'b' },
      output: { ok: false, reason: 'not_applied' },
      call: 10,
      return: 15,
    },
    {
      client: 3,
      key: 'doc',
      input: { op: 'read' },
      output: { found: true, value: 'b', rev: '2-b' },
      call: 20,
      return: 25,
    },
  ];
  assert.equal(check(ops), 'not_linearizable');
  ops[1] = { ...ops[1]!, output: null, return: null };
  assert.equal(
    check(ops),
    'linearizable',
    'the same write with an unknown outcome may have happened',
  );
});

test('document model rejects a lost acknowledged write', () => {
  const ops: Op[] = [
    {
      client: 1,
      key: 'doc',
      input: { op: 'create', value: 'a' },
      output: { ok: true, rev: '1-a' },
      call: 0,
      return: 5,
    },
    {
      client: 1,
      key: 'doc',
      input: { op: 'update', expected: 'a', value: 'b' },
      output: { ok: true, rev: '2-b' },
      call: 10,
      return: 15,
    },
    {
      client: 2,
      key: 'doc',
      input: { op: 'read' },
      output: { found: true, value: 'a', rev: '1-a' },
      call: 20,
      return: 25,
    },
  ];
  assert.equal(check(ops), 'not_linearizable');
});

test('document model orders concurrent compare-and-set', () => {
  // Two updates from the same revision overlap: exactly one may win.
  const base: Op = {
    client: 1,
    key: 'doc',
    input: { op: 'create', value: 'a' },
    output: { ok: true, rev: '1-a' },
    call: 0,
    return: 5,
  };
  const update = (client: number, value: string, ok: boolean): Op => ({
    client,
    key: 'doc',
    input: { op: 'update', expected: 'a', value },
    output: ok ? { ok: true, rev: `2-${value}` } : { ok: false, reason: 'conflict' },
    call: 10,
    return: 20,
  });
  assert.equal(check([base, update(2, 'b', true), update(3, 'c', false)]), 'linearizable');
  assert.equal(check([base, update(2, 'b', true), update(3, 'c', true)]), 'not_linearizable');
  assert.equal(check([base, update(2, 'b', false), update(3, 'c', false)]), 'not_linearizable');
});
