/**
 * `WindowedSamples`: the samples of the last `windowMs` milliseconds, summarised in the shape
 * CouchDB's `_stats` gives a histogram (min, max, means, median, variance, skewness,
 * kurtosis, percentiles, bins and count).
 *
 * CouchDB summarises each histogram over its `[stats] interval` (10 s by default); this does
 * the same. Memory is bounded: past `capacity` samples in one window the oldest are
 * overwritten, so under heavy load the summary covers the most recent `capacity` samples.
 *
 * Not for Prometheus: cumulative histograms live in metrics.ts.
 */
import { assert } from '../util/assert.js';

const DEFAULT_WINDOW_MS = 10_000;
const DEFAULT_CAPACITY = 8192;
/** Bins of the `histogram` member: equal widths between min and max. */
const HISTOGRAM_BINS = 10;
/** CouchDB's percentiles; 999 means the 99.9th. */
const PERCENTILES: readonly (readonly [label: number, quantile: number])[] = [
  [50, 0.5],
  [75, 0.75],
  [90, 0.9],
  [95, 0.95],
  [99, 0.99],
  [999, 0.999],
];

/** CouchDB's `_stats` histogram value. */
export interface HistogramSummary {
  readonly min: number;
  readonly max: number;
  readonly arithmetic_mean: number;
  readonly geometric_mean: number;
  readonly harmonic_mean: number;
  readonly median: number;
  readonly variance: number;
  readonly standard_deviation: number;
  readonly skewness: number;
  readonly kurtosis: number;
  readonly percentile: readonly (readonly [number, number])[];
  readonly histogram: readonly (readonly [number, number])[];
  readonly n: number;
}

export class WindowedSamples {
  readonly #values: Float64Array;
  readonly #times: Float64Array;
  /** Index of the next slot to write. */
  #next = 0;
  /** Slots written so far, at most the capacity. */
  #filled = 0;

  constructor(
    readonly windowMs = DEFAULT_WINDOW_MS,
    readonly capacity = DEFAULT_CAPACITY,
    readonly now: () => number = Date.now,
  ) {
    assert(windowMs > 0, 'the window must be positive');
    assert(
      Number.isSafeInteger(capacity) && capacity > 0,
      'the capacity must be a positive integer',
    );
    this.#values = new Float64Array(capacity);
    this.#times = new Float64Array(capacity);
  }

  add(value: number): void {
    assert(Number.isFinite(value), 'a sample must be a finite number');
    this.#values[this.#next] = value;
    this.#times[this.#next] = this.now();
    this.#next = (this.#next + 1) % this.capacity;
    this.#filled = Math.min(this.#filled + 1, this.capacity);
  }

  /** Returns the samples of the current window, sorted ascending. */
  recent(): Float64Array {
    const since = this.now() - this.windowMs;
    const kept: number[] = [];
    for (let i = 0; i < this.#filled; i++) {
      if (this.#times[i]! > since) kept.push(this.#values[i]!);
    }
    return Float64Array.from(kept).sort();
  }

  summary(): HistogramSummary {
    return summarise(this.recent());
  }
}

/** Summarises sorted samples; every figure is 0 when there are none. */
export function summarise(sorted: Float64Array): HistogramSummary {
  const n = sorted.length;
  if (n === 0) return emptySummary();
  const mean = sorted.reduce((sum, value) => sum + value, 0) / n;

  let second = 0;
  let third = 0;
  let fourth = 0;
  for (const value of sorted) {
    const deviation = value - mean;
    second += deviation ** 2;
    third += deviation ** 3;
    fourth += deviation ** 4;
  }
  const variance = n > 1 ? second / (n - 1) : 0;
  const populationVariance = second / n;
  const skewness = populationVariance > 0 ? third / n / populationVariance ** 1.5 : 0;
  const kurtosis = populationVariance > 0 ? fourth / n / populationVariance ** 2 - 3 : 0;

  return {
    min: sorted[0]!,
    max: sorted[n - 1]!,
    arithmetic_mean: mean,
    geometric_mean: geometricMean(sorted),
    harmonic_mean: harmonicMean(sorted),
    median: quantile(sorted, 0.5),
    variance,
    standard_deviation: Math.sqrt(variance),
    skewness,
    kurtosis,
    percentile: PERCENTILES.map(([label, q]) => [label, quantile(sorted, q)] as const),
    histogram: bins(sorted),
    n,
  };
}

function emptySummary(): HistogramSummary {
  return {
    min: 0,
    max: 0,
    arithmetic_mean: 0,
    geometric_mean: 0,
    harmonic_mean: 0,
    median: 0,
    variance: 0,
    standard_deviation: 0,
    skewness: 0,
    kurtosis: 0,
    percentile: PERCENTILES.map(([label]) => [label, 0] as const),
    histogram: [[0, 0]],
    n: 0,
  };
}

/** Returns the nearest-rank quantile: the smallest sample with at least `q` of the samples at or below it. */
export function quantile(sorted: Float64Array, q: number): number {
  assert(sorted.length > 0, 'a quantile needs samples');
  assert(q >= 0, 'a quantile is at least 0');
  assert(q <= 1, 'a quantile is at most 1');
  const rank = Math.max(1, Math.ceil(q * sorted.length));
  return sorted[rank - 1]!;
}

/** Means over the positive samples only: both are undefined for zero or negative values. */
function geometricMean(sorted: Float64Array): number {
  let count = 0;
  let logSum = 0;
  for (const value of sorted) {
    if (value <= 0) continue;
    logSum += Math.log(value);
    count++;
  }
  return count === 0 ? 0 : Math.exp(logSum / count);
}

function harmonicMean(sorted: Float64Array): number {
  let count = 0;
  let reciprocalSum = 0;
  for (const value of sorted) {
    if (value <= 0) continue;
    reciprocalSum += 1 / value;
    count++;
  }
  return count === 0 ? 0 : count / reciprocalSum;
}

/** `[lower bound, count]` per bin of equal width from min to max (one bin when all are equal). */
function bins(sorted: Float64Array): [number, number][] {
  const min = sorted[0]!;
  const max = sorted[sorted.length - 1]!;
  if (max === min) return [[min, sorted.length]];
  const span = max - min;
  const width = span / HISTOGRAM_BINS;
  const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
  for (const value of sorted) {
    // Divided by the span, not the width, because the width of a span of a few subnormal
    // numbers rounds to 0, and a division by it gives no bin at all.
    const bin = Math.min(HISTOGRAM_BINS - 1, Math.floor(((value - min) / span) * HISTOGRAM_BINS));
    counts[bin]!++;
  }
  return counts.map((count, bin) => [min + bin * width, count]);
}
