/**
 * The simulator's summary, one figure per line, and the command that replays a seed.
 */
import type { PlantedBug } from '../raft/index.js';
import type { RunResult } from './run.js';

/** Prints the summary lines of `results`; returns the total number of violations. */
export function printSummary(results: readonly RunResult[], print: (line: string) => void): number {
  const faults = new Map<string, number>();
  let acknowledged = 0;
  let lossyCrashes = 0;
  let elections = 0;
  let violations = 0;
  for (const result of results) {
    acknowledged += result.acknowledged;
    lossyCrashes += result.lossyCrashes;
    elections += result.elections;
    violations += result.violations.length;
    for (const [kind, count] of result.faults) faults.set(kind, (faults.get(kind) ?? 0) + count);
  }
  const faultTotal = [...faults.values()].reduce((sum, count) => sum + count, 0);
  print(`seeds: ${results.length}`);
  print(`acknowledged: ${acknowledged}`);
  print(`faults: ${faultTotal}`);
  for (const kind of [...faults.keys()].sort()) print(`  ${kind}: ${faults.get(kind)}`);
  print(`lossy crashes: ${lossyCrashes}`);
  print(`elections: ${elections}`);
  print(`violations: ${violations}`);
  return violations;
}

/** Returns the command that replays one seed with the same settings. */
export function replayCommand(
  seed: number,
  options: {
    nodes: number;
    durationMs: number;
    bug?: PlantedBug;
    quiesce?: boolean;
    membership?: boolean;
  },
): string {
  const parts = [
    'npm run sim --',
    `--seed ${seed}`,
    `--nodes ${options.nodes}`,
    `--duration-ms ${options.durationMs}`,
  ];
  if (options.bug !== undefined) parts.push(`--bug ${options.bug}`);
  if (options.quiesce !== undefined) parts.push(options.quiesce ? '--quiesce' : '--no-quiesce');
  if (options.membership !== undefined) {
    parts.push(options.membership ? '--membership' : '--no-membership');
  }
  return parts.join(' ');
}
