/**
 * The report of a chaos run: a JSON document written under the results directory and a text
 * summary, with requests by kind and outcome, faults by kind, leader changes, the longest
 * unavailability, the minimums, every violation with the requests involved, and the command
 * that replays the run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MinimumsResult, Violation } from './checks.js';
import type { ClientHistory, RequestRecord } from './history.js';
import type { FaultEvent } from './nemesis.js';
import type { LeaderSighting } from './observer.js';
import type { ChaosOptions } from './options.js';
import type { ProxyCounters } from './proxy.js';

export const REPORT_VERSION = 1;
/** Requests listed per violation in the JSON report. */
const REQUESTS_PER_VIOLATION = 40;
/** Lines of a violation's message printed in the text summary. */
const SUMMARY_MESSAGE_LINES = 30;

/**
 * `pass`: no violation and every minimum met; `violation`: a check failed; `too_weak`: no
 * violation, but a minimum was not met; `error`: the harness could not finish the run.
 */
export type Verdict = 'pass' | 'violation' | 'too_weak' | 'error';

export interface Unavailability {
  readonly longestMs: number;
  readonly fromMs: number;
  readonly toMs: number;
  /** Faults active during that window. */
  readonly faults: readonly string[];
}

export interface ChaosReport {
  readonly version: number;
  readonly verdict: Verdict;
  readonly replay: string;
  readonly options: ChaosOptions;
  readonly startedAt: string;
  readonly elapsedMs: number;
  readonly requests: Record<string, Record<string, number>>;
  readonly faults: Record<string, Record<string, number>>;
  readonly faultEvents: readonly FaultEvent[];
  readonly leaderChanges: number;
  readonly leaders: readonly LeaderSighting[];
  readonly unavailability: Unavailability;
  readonly linearizability: { documents: number; operations: number; elapsedMs: number };
  readonly minimums: MinimumsResult | null;
  readonly violations: readonly (Violation & { involved: readonly RequestRecord[] })[];
  readonly anomalies: readonly string[];
  readonly network: ProxyCounters;
  readonly error: string | null;
  readonly dataDir: string | null;
}

export function countRequests(
  records: readonly RequestRecord[],
): Record<string, Record<string, number>> {
  const table: Record<string, Record<string, number>> = {};
  for (const record of records) {
    table[record.kind] ??= {};
    const row = table[record.kind]!;
    const outcome = record.outcome ?? 'unfinished';
    row[outcome] = (row[outcome] ?? 0) + 1;
  }
  return table;
}

export function countFaults(events: readonly FaultEvent[]): Record<string, Record<string, number>> {
  const table: Record<string, Record<string, number>> = {};
  for (const event of events) {
    table[event.kind] ??= {};
    const row = table[event.kind]!;
    row[event.result] = (row[event.result] ?? 0) + 1;
  }
  return table;
}

/**
 * The longest time between two requests that completed definitively (done or rejected) within
 * [fromMs, toMs], and the faults active then.
 */
export function longestUnavailability(
  records: readonly RequestRecord[],
  events: readonly FaultEvent[],
  fromMs: number,
  toMs: number,
): Unavailability {
  const completions = records
    .filter(
      (record) =>
        (record.outcome === 'ok' || record.outcome === 'rejected') && record.return !== null,
    )
    .map((record) => record.return!)
    .filter((at) => at >= fromMs && at <= toMs)
    .sort((a, b) => a - b);
  const marks = [fromMs, ...completions, toMs];
  let best = { longestMs: 0, fromMs, toMs: fromMs };
  for (let i = 1; i < marks.length; i++) {
    const gap = marks[i]! - marks[i - 1]!;
    if (gap > best.longestMs) best = { longestMs: gap, fromMs: marks[i - 1]!, toMs: marks[i]! };
  }
  const faults = events
    .filter((event) => event.startMs < best.toMs && event.endMs > best.fromMs)
    .map((event) => `${event.kind} ${event.targets.join(',')}`.trim());
  return { ...best, faults };
}

/** Attaches the records of the requests each violation names. */
export function withRequests(
  violations: readonly Violation[],
  records: readonly RequestRecord[],
): (Violation & { involved: RequestRecord[] })[] {
  return violations.map((violation) => ({
    ...violation,
    involved: (violation.requests ?? [])
      .slice(0, REQUESTS_PER_VIOLATION)
      .map((id) => records[id])
      .filter((record): record is RequestRecord => record !== undefined),
  }));
}

/** Writes the report as `<dir>/chaos-<seed>-<time>.json`; returns the path. */
export function saveReport(report: ChaosReport, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const stamp = report.startedAt.replace(/[:.]/g, '-');
  const path = join(dir, `chaos-${report.options.seed}-${stamp}.json`);
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
  return path;
}

/**
 * Writes every request record and the checker's history (`{ "ops": [...] }`, document model)
 * next to the report at `<report>.history.json`; returns the path.
 */
export function saveHistory(reportPath: string, history: ClientHistory): string {
  const path = reportPath.replace(/\.json$/, '.history.json');
  writeFileSync(path, `${JSON.stringify({ records: history.records, ops: history.checkOps })}\n`);
  return path;
}

export function formatSummary(report: ChaosReport, path: string | null): string {
  const lines: string[] = [];
  const { options } = report;
  lines.push(
    `chaos run: ${options.nodes} nodes, ${options.durationSec} s of faults, seed ${options.seed}${options.powerLoss ? ', power loss' : ''}`,
  );
  const bugs = [
    ...(options.unsafeAckBeforeFsync ? ['unsafe-ack-before-fsync'] : []),
    ...options.plantedBugs,
  ];
  if (bugs.length > 0) lines.push(`planted bugs: ${bugs.join(', ')}`);
  lines.push('requests (by kind: outcome counts):');
  for (const [kind, row] of Object.entries(report.requests))
    lines.push(`  ${kind}: ${formatRow(row)}`);
  lines.push('faults (by kind: result counts):');
  for (const [kind, row] of Object.entries(report.faults))
    lines.push(`  ${kind}: ${formatRow(row)}`);
  lines.push(`leader changes: ${report.leaderChanges}`);
  const gap = report.unavailability;
  lines.push(
    `longest unavailability: ${(gap.longestMs / 1000).toFixed(2)} s (from ${(gap.fromMs / 1000).toFixed(1)} s to ${(gap.toMs / 1000).toFixed(1)} s${gap.faults.length > 0 ? `, during ${gap.faults.join('; ')}` : ''})`,
  );
  const lin = report.linearizability;
  lines.push(
    `linearizability: ${lin.operations} operations on ${lin.documents} documents checked in ${lin.elapsedMs} ms`,
  );
  if (report.minimums !== null) {
    const m = report.minimums.measured;
    lines.push(
      `minimums: ${m.opsPerDocument.toFixed(1)} operations per document, ${(m.concurrentShare * 100).toFixed(1)}% concurrent, ${m.okRequests} requests done`,
    );
    for (const kind of report.minimums.notAvailable)
      lines.push(`  ${kind}: not available in this build`);
    for (const shortfall of report.minimums.shortfalls) lines.push(`  too weak: ${shortfall}`);
  }
  for (const anomaly of report.anomalies.slice(0, 10)) lines.push(`anomaly: ${anomaly}`);
  lines.push(`violations: ${report.violations.length}`);
  for (const violation of report.violations) {
    lines.push(`- ${violation.kind}${violation.key === undefined ? '' : ` (${violation.key})`}:`);
    const messageLines = violation.message.split('\n');
    for (const line of messageLines.slice(0, SUMMARY_MESSAGE_LINES)) lines.push(`    ${line}`);
    if (messageLines.length > SUMMARY_MESSAGE_LINES)
      lines.push(
        `    ... (${messageLines.length - SUMMARY_MESSAGE_LINES} more lines in the JSON report)`,
      );
  }
  if (report.error !== null) lines.push(`error: ${report.error}`);
  lines.push(`verdict: ${report.verdict}`);
  if (path !== null) lines.push(`report: ${path}`);
  if (report.dataDir !== null) lines.push(`data and logs kept in ${report.dataDir}`);
  lines.push(`replay: ${report.replay}`);
  return lines.join('\n');
}

function formatRow(row: Record<string, number>): string {
  return Object.entries(row)
    .map(([name, count]) => `${name} ${count}`)
    .join(', ');
}
