/**
 * `WindowedSamples` and `summarise` against naive oracles, and `routeKind` on a table of
 * request targets.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { routeKind } from '../../src/ops/http-metrics.js';
import { quantile, summarise, WindowedSamples } from '../../src/ops/window.js';

const sample = fc.double({ min: 0, max: 1e4, noNaN: true });

test('summary matches naive figures', () => {
  fc.assert(
    fc.property(fc.array(sample, { minLength: 1, maxLength: 200 }), (values) => {
      const sorted = Float64Array.from(values).sort();
      const summary = summarise(sorted);
      const mean = values.reduce((sum, value) => sum + value, 0) / values.length;
      assert.equal(summary.n, values.length);
      assert.equal(summary.min, Math.min(...values));
      assert.equal(summary.max, Math.max(...values));
      assert.ok(Math.abs(summary.arithmetic_mean - mean) <= 1e-9 * Math.max(1, mean));
      assert.ok(summary.variance >= 0);
      const binned = summary.histogram.reduce((sum, [, count]) => sum + count, 0);
      assert.equal(binned, values.length, 'every sample in one bin');
      for (const [, value] of summary.percentile) {
        assert.ok(value >= summary.min, 'percentile at or above min');
        assert.ok(value <= summary.max, 'percentile at or below max');
      }
      assert.ok(summary.median <= summary.percentile[5]![1], 'median below the 99.9th');
    }),
  );
});

test('subnormal samples each land in a bin', () => {
  const summary = summarise(Float64Array.from([0, 5e-324]));
  const binned = summary.histogram.reduce((sum, [, count]) => sum + count, 0);
  assert.equal(binned, 2);
});

test('quantile is nearest rank', () => {
  fc.assert(
    fc.property(
      fc.array(sample, { minLength: 1, maxLength: 100 }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      (values, q) => {
        const sorted = Float64Array.from(values).sort();
        const result = quantile(sorted, q);
        const atOrBelow = values.filter((value) => value <= result).length;
        assert.ok(atOrBelow >= q * values.length, 'at least q of the samples at or below');
        const below = values.filter((value) => value < result).length;
        assert.ok(below === 0 || below < q * values.length, 'no smaller sample qualifies');
      },
    ),
  );
});

test('empty summary is zero', () => {
  const summary = summarise(new Float64Array(0));
  assert.equal(summary.n, 0);
  assert.equal(summary.max, 0);
  assert.equal(summary.percentile.length, 6);
});

test('window drops old samples', () => {
  let now = 1_000_000;
  const window = new WindowedSamples(10_000, 16, () => now);
  window.add(5);
  now += 5_000;
  window.add(7);
  assert.deepEqual([...window.recent()], [5, 7]);
  now += 6_000;
  assert.deepEqual([...window.recent()], [7]);
  now += 5_000;
  assert.equal(window.summary().n, 0);
});

test('window keeps the latest past capacity', () => {
  const window = new WindowedSamples(10_000, 4, () => 0);
  for (let i = 1; i <= 10; i++) window.add(i);
  assert.deepEqual([...window.recent()], [7, 8, 9, 10]);
});

test('route kinds of request targets', () => {
  const cases: [string, string][] = [
    ['/', 'server'],
    ['/_all_dbs', 'server'],
    ['//_cluster_setup', 'server'],
    ['/_utils/index.html', 'utils'],
    ['/_session', 'session'],
    ['/_divan/cluster', 'status'],
    ['/_node/_local/_prometheus', 'metrics'],
    ['/db', 'database'],
    ['/_users', 'database'],
    ['/db/_bulk_docs', 'bulk_docs'],
    ['/db/_bulk_get?revs=true', 'bulk_get'],
    ['/db/_all_docs?limit=2', 'all_docs'],
    ['/db/_changes?feed=longpoll', 'changes'],
    ['/db/_find', 'find'],
    ['/db/_design/d/_view/v', 'view'],
    ['/db/_design/d', 'doc'],
    ['/db/_local/x', 'doc'],
    ['/db/doc-1', 'doc'],
    ['/db/_security', 'database'],
  ];
  for (const [target, kind] of cases) assert.equal(routeKind(target), kind, target);
});
