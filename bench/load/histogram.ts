/**
 * Latency histograms of the load generator: an HDR histogram (`hdr-histogram-js`) of
 * microseconds with three significant digits, so every percentile is exact to 0.1%, and a
 * summary in milliseconds for reports.
 */
import { build, type Histogram } from 'hdr-histogram-js';

const MICROSECONDS_PER_MILLISECOND = 1000;
/** Latencies above this (one hour) are recorded as this; no run is that long. */
const HIGHEST_TRACKABLE_MICROSECONDS = 3_600_000_000;
const SIGNIFICANT_DIGITS = 3;
const PERCENT = 100;

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export class LatencyHistogram {
  readonly #histogram: Histogram = build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_TRACKABLE_MICROSECONDS,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    autoResize: false,
  });

  /** Records one latency given in milliseconds (fractions kept to the microsecond). */
  recordMs(milliseconds: number): void {
    const microseconds = Math.round(milliseconds * MICROSECONDS_PER_MILLISECOND);
    this.#histogram.recordValue(
      Math.min(HIGHEST_TRACKABLE_MICROSECONDS, Math.max(1, microseconds)),
    );
  }

  get count(): number {
    return this.#histogram.totalCount;
  }

  /** Returns the latency at `fraction` (0.5 for the median) in milliseconds, or 0 when empty. */
  percentileMs(fraction: number): number {
    if (this.count === 0) return 0;
    return this.#histogram.getValueAtPercentile(fraction * PERCENT) / MICROSECONDS_PER_MILLISECOND;
  }

  summary(): LatencySummary {
    const empty = this.count === 0;
    return {
      count: this.count,
      meanMs: empty ? 0 : this.#histogram.mean / MICROSECONDS_PER_MILLISECOND,
      p50Ms: this.percentileMs(0.5),
      p90Ms: this.percentileMs(0.9),
      p99Ms: this.percentileMs(0.99),
      p999Ms: this.percentileMs(0.999),
      maxMs: empty ? 0 : this.#histogram.maxValue / MICROSECONDS_PER_MILLISECOND,
    };
  }

  /** Frees the histogram's buffers (needed only for the WebAssembly variant, harmless here). */
  destroy(): void {
    this.#histogram.destroy();
  }
}
