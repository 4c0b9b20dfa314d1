/**
 * Runs a chaos run inside a test: its JSON report goes to a temp directory, and a failed
 * expectation prints the whole summary, seed and replay command included.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { type ChaosOptions, chaosOptions } from '../../src/chaos/options.js';
import { type ChaosReport, formatSummary, type Verdict } from '../../src/chaos/report.js';
import { runChaos } from '../../src/chaos/run.js';
import { tempDir } from '../support/tmp.js';

export async function chaosRun(
  t: TestContext,
  options: Partial<ChaosOptions> & { seed: number },
): Promise<{ report: ChaosReport; summary: string }> {
  const resultsDir = await tempDir(t, 'divan-chaos-results-');
  const { report, path } = await runChaos(chaosOptions({ ...options, resultsDir }));
  const summary = formatSummary(report, path);
  t.diagnostic(summary);
  return { report, summary };
}

export function assertVerdict(
  run: { report: ChaosReport; summary: string },
  verdict: Verdict,
): void {
  assert.equal(run.report.verdict, verdict, run.summary);
}
