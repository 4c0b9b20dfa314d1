/**
 * The linearizability checker against hand-written histories, a brute-force oracle on small
 * random histories, its time budget, and its command line.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import type { KvInput, KvOutput, Operation } from '../../src/check/index.js';
import { checkHistory, kvModel, parseHistory } from '../../src/check/index.js';
import { tempDir } from '../support/tmp.js';

type KvOp = Operation<KvInput, KvOutput>;

function op(
  client: number,
  call: number,
  ret: number | null,
  input: KvInput,
  output: KvOutput | null,
  key = 'k',
): KvOp {
  return { client, key, input, output, call, return: ret };
}

const put = (value: string): KvInput => ({ op: 'put', value });
const get: KvInput = { op: 'get' };

test('sequential history is linearizable', () => {
  const result = checkHistory(kvModel, {
    ops: [op(1, 0, 1, put('a'), {}), op(1, 2, 3, get, { value: 'a' })],
  });
  assert.equal(result.outcome, 'linearizable');
});

test('stale read is reported with a counterexample', () => {
  const result = checkHistory(kvModel, {
    ops: [op(1, 0, 1, put('a'), {}), op(1, 2, 3, put('b'), {}), op(2, 4, 5, get, { value: 'a' })],
  });
  assert.equal(result.outcome, 'not_linearizable');
  assert.ok(result.outcome === 'not_linearizable');
  assert.match(result.report, /key "k"/);
  assert.match(result.report, /put\("b"\)/);
  assert.match(result.report, /none of these can come next/);
  assert.match(result.report, /get -> \{"value":"a"\}/);
});

test('concurrent operations may take either order', () => {
  const result = checkHistory(kvModel, {
    ops: [
      op(1, 0, 10, put('a'), {}),
      op(2, 1, 9, put('b'), {}),
      op(3, 11, 12, get, { value: 'a' }),
    ],
  });
  assert.equal(result.outcome, 'linearizable');
});

test('unknown write may or may not take effect', () => {
  const seen = checkHistory(kvModel, {
    ops: [op(1, 0, null, put('a'), null), op(2, 5, 6, get, { value: 'a' })],
  });
  assert.equal(seen.outcome, 'linearizable');
  const unseen = checkHistory(kvModel, {
    ops: [op(1, 0, null, put('a'), null), op(2, 5, 6, get, { value: null })],
  });
  assert.equal(unseen.outcome, 'linearizable');
});

test('a value never written cannot be read', () => {
  const result = checkHistory(kvModel, {
    ops: [op(1, 0, 1, put('a'), {}), op(2, 2, 3, get, { value: 'z' })],
  });
  assert.equal(result.outcome, 'not_linearizable');
});

test('keys are checked independently', () => {
  const result = checkHistory(kvModel, {
    ops: [
      op(1, 0, 1, put('a'), {}, 'x'),
      op(1, 2, 3, get, { value: null }, 'y'),
      op(1, 4, 5, get, { value: 'a' }, 'x'),
    ],
  });
  assert.deepEqual(result, { outcome: 'linearizable', partitions: 2, operations: 3 });
});

test('compare-and-set follows the register', () => {
  const ok = checkHistory(kvModel, {
    ops: [
      op(1, 0, 1, put('a'), {}),
      op(1, 2, 3, { op: 'cas', expected: 'a', value: 'b' }, { ok: true }),
      op(1, 4, 5, { op: 'cas', expected: 'a', value: 'c' }, { ok: false }),
      op(1, 6, 7, get, { value: 'b' }),
    ],
  });
  assert.equal(ok.outcome, 'linearizable');
  const wrong = checkHistory(kvModel, {
    ops: [
      op(1, 0, 1, put('a'), {}),
      op(1, 2, 3, { op: 'cas', expected: 'a', value: 'b' }, { ok: false }),
    ],
  });
  assert.equal(wrong.outcome, 'not_linearizable');
});

/** Returns whether some order of `ops` that respects real time is a legal sequential run. */
function bruteForce(ops: readonly KvOp[]): boolean {
  const placed = new Array<boolean>(ops.length).fill(false);
  const search = (state: string | null, count: number): boolean => {
    if (count === ops.length) return true;
    for (let i = 0; i < ops.length; i++) {
      if (placed[i]) continue;
      // i may go next only if no unplaced operation returned before i was called.
      const blocked = ops.some(
        (other, j) => !placed[j] && j !== i && other.return !== null && other.return < ops[i]!.call,
      );
      if (blocked) continue;
      const item = ops[i]!;
      const after = kvModel.step(state, item.input, item.return === null ? null : item.output);
      if (after === undefined) continue;
      placed[i] = true;
      if (search(after, count + 1)) return true;
      placed[i] = false;
    }
    return false;
  };
  return search(null, 0);
}

const kvInput = fc.oneof(
  fc.constant<KvInput>({ op: 'get' }),
  fc.constantFrom('a', 'b').map<KvInput>((value) => ({ op: 'put', value })),
  fc
    .tuple(fc.constantFrom<string | null>(null, 'a', 'b'), fc.constantFrom('a', 'b'))
    .map<KvInput>(([expected, value]) => ({ op: 'cas', expected, value })),
);

const randomOp = fc
  .tuple(
    kvInput,
    fc.nat(20),
    fc.nat(10),
    fc.boolean(),
    fc.constantFrom<string | null>(null, 'a', 'b'),
    fc.boolean(),
    fc.integer({ min: 0, max: 9 }),
  )
  .map(([input, call, length, okFlag, value, unknown, tie]): KvOp => {
    let output: KvOutput;
    if (input.op === 'get') output = { value };
    else if (input.op === 'cas') output = { ok: okFlag };
    else output = {};
    const ret = unknown && tie < 3 ? null : call + length;
    return op(tie, call, ret, input, output);
  });

test('checker agrees with brute force on small histories', () => {
  fc.assert(
    fc.property(fc.array(randomOp, { maxLength: 6 }), (ops) => {
      const expected = bruteForce(ops);
      const actual = checkHistory(kvModel, { ops }).outcome === 'linearizable';
      assert.equal(actual, expected);
    }),
    { numRuns: 2000 },
  );
});

test('time budget is enforced', () => {
  const ops: KvOp[] = [];
  for (let i = 0; i < 60; i++) ops.push(op(i, 0, 100, put(`v${i}`), {}));
  ops.push(op(99, 101, 102, get, { value: 'never' }));
  const result = checkHistory(kvModel, { ops }, { budgetMs: 50 });
  assert.equal(result.outcome, 'timeout');
  assert.ok(result.outcome === 'timeout');
  assert.match(result.report, /timed out after 50 ms/);
});

test('history parser names the bad operation', () => {
  assert.throws(
    () => parseHistory('{"ops":[{"client":1,"key":"k","input":{},"call":5,"return":2}]}'),
    /operation 0: return is before call/,
  );
  assert.throws(() => parseHistory('[]'), /"ops" array/);
});

test('command line checks a history file', async (t) => {
  const dir = await tempDir(t);
  const good = join(dir, 'good.json');
  const bad = join(dir, 'bad.json');
  writeFileSync(
    good,
    JSON.stringify({ ops: [op(1, 0, 1, put('a'), {}), op(1, 2, 3, get, { value: 'a' })] }),
  );
  writeFileSync(
    bad,
    JSON.stringify({ ops: [op(1, 0, 1, put('a'), {}), op(1, 2, 3, get, { value: 'b' })] }),
  );
  const cli = 'dist/src/check/cli.js';
  const ok = spawnSync(process.execPath, [cli, good, '--model', 'kv'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /linearizable: 2 operations in 1 keys/);
  const failed = spawnSync(process.execPath, [cli, bad, '--model', 'kv'], { encoding: 'utf8' });
  assert.equal(failed.status, 1);
  assert.match(failed.stdout, /not linearizable/);
  const unknown = spawnSync(process.execPath, [cli, good, '--model', 'nope'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown model "nope"/);
});
