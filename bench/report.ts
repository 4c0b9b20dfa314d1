/**
 * Benchmark reporting: one comparison line per scenario, metric and peer, in the form
 * `<scenario> <metric>: divan=<value> <peer>=<value> ratio=<r> (<unit>)`, where a ratio above 1
 * always means Divan is better; plus a JSON file under bench/results/.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export type Direction = 'higher-is-better' | 'lower-is-better';

export interface Comparison {
  scenario: string;
  metric: string;
  unit: string;
  direction: Direction;
  divan: number;
  peer: string;
  peerValue: number;
  /** divan/peer for throughput, peer/divan for latency: above 1 means Divan is better. */
  ratio: number;
}

export interface Measurement {
  scenario: string;
  metric: string;
  unit: string;
  value: number;
}

export class BenchReport {
  readonly comparisons: Comparison[] = [];
  readonly measurements: Measurement[] = [];
  readonly startedAt = new Date().toISOString();

  constructor(readonly name: string) {}

  /** Records and prints one comparison line. */
  compare(
    scenario: string,
    metric: string,
    unit: string,
    direction: Direction,
    divan: number,
    peer: string,
    peerValue: number,
  ): Comparison {
    const ratio = direction === 'higher-is-better' ? divan / peerValue : peerValue / divan;
    const comparison = { scenario, metric, unit, direction, divan, peer, peerValue, ratio };
    this.comparisons.push(comparison);
    console.log(
      `${scenario} ${metric}: divan=${formatValue(divan)} ${peer}=${formatValue(peerValue)} ratio=${ratio.toFixed(2)} (${unit})`,
    );
    return comparison;
  }

  /** Records and prints a figure that has no peer. */
  measure(scenario: string, metric: string, unit: string, value: number): Measurement {
    const measurement = { scenario, metric, unit, value };
    this.measurements.push(measurement);
    console.log(`${scenario} ${metric}: divan=${formatValue(value)} (${unit})`);
    return measurement;
  }

  /** Writes bench/results/<name>-<timestamp>.json and bench/results/<name>-latest.json. */
  save(extra: Record<string, unknown> = {}): string {
    const dir = join(process.cwd(), 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const json = JSON.stringify(
      {
        name: this.name,
        startedAt: this.startedAt,
        finishedAt: new Date().toISOString(),
        machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem() },
        node: process.version,
        comparisons: this.comparisons,
        measurements: this.measurements,
        ...extra,
      },
      null,
      2,
    );
    const body = `${json}\n`;
    const stamp = this.startedAt.replace(/[:.]/g, '-');
    const path = join(dir, `${this.name}-${stamp}.json`);
    writeFileSync(path, body);
    writeFileSync(join(dir, `${this.name}-latest.json`), body);
    console.log(`results written to ${path}`);
    return path;
  }
}

/** Prints progress of a long step on stderr, so stdout keeps only result lines. */
export function progress(message: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function formatValue(value: number): string {
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 1) return value.toFixed(2);
  return value.toPrecision(3);
}
