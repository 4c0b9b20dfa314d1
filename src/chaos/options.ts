/**
 * The settings of a chaos run, their defaults, and the command that replays a run. Everything
 * random in a run derives from `seed`.
 */
import { FAULT_KINDS, type FaultKind, POWER_LOSS_KINDS } from './schedule.js';

export interface ChaosOptions {
  readonly nodes: 3 | 5;
  /** Length of the fault phase, in seconds; healing and the checks come after it. */
  readonly durationSec: number;
  readonly seed: number;
  /** Record synced lengths on every node and enable the power-loss fault kinds. */
  readonly powerLoss: boolean;
  /** Fault kinds to schedule; every one of them must fire. */
  readonly faults: readonly FaultKind[];
  /** Raft core bugs planted in every node (`--planted-bug`). */
  readonly plantedBugs: readonly string[];
  /** Plant `--unsafe-ack-before-fsync` in every node. */
  readonly unsafeAckBeforeFsync: boolean;
  readonly clients: number;
  /** Documents in use at once. */
  readonly activeKeys: number;
  readonly maxOpsPerDocument: number;
  /** Client timeout per request, in ms. */
  readonly requestTimeoutMs: number;
  /** Time budget of the linearizability check, in ms. */
  readonly checkBudgetMs: number;
  /** Directory of the JSON reports. */
  readonly resultsDir: string;
  /** Keep the nodes' data and logs after the run (their directory is printed). */
  readonly keepData: boolean;
  /** Also write every request and the checker's history next to the report. */
  readonly saveHistory: boolean;
}

/** The node's write timeout is 10 s; clients wait longer so that its 503 replies show. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 12_000;
export const DEFAULT_CHECK_BUDGET_MS = 120_000;
export const DEFAULT_ACTIVE_KEYS = 6;
export const DEFAULT_MAX_OPS_PER_DOCUMENT = 30;
export const DEFAULT_RESULTS_DIR = 'chaos/results';
const CLIENTS_PER_NODE = 2;

/** The fault kinds a run schedules unless told otherwise. */
export function defaultFaults(powerLoss: boolean): FaultKind[] {
  return FAULT_KINDS.filter((kind) => powerLoss || !POWER_LOSS_KINDS.includes(kind));
}

export function chaosOptions(partial: Partial<ChaosOptions> & { seed: number }): ChaosOptions {
  const nodes = partial.nodes ?? 3;
  const powerLoss = partial.powerLoss ?? false;
  const faults = partial.faults ?? defaultFaults(powerLoss);
  const needsPowerLoss = faults.filter((kind) => POWER_LOSS_KINDS.includes(kind));
  if (!powerLoss && needsPowerLoss.length > 0) {
    throw new Error(`fault kinds ${needsPowerLoss.join(', ')} need --power-loss`);
  }
  return {
    nodes,
    durationSec: partial.durationSec ?? 60,
    seed: partial.seed,
    powerLoss,
    faults,
    plantedBugs: partial.plantedBugs ?? [],
    unsafeAckBeforeFsync: partial.unsafeAckBeforeFsync ?? false,
    clients: partial.clients ?? nodes * CLIENTS_PER_NODE,
    activeKeys: partial.activeKeys ?? DEFAULT_ACTIVE_KEYS,
    maxOpsPerDocument: partial.maxOpsPerDocument ?? DEFAULT_MAX_OPS_PER_DOCUMENT,
    requestTimeoutMs: partial.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    checkBudgetMs: partial.checkBudgetMs ?? DEFAULT_CHECK_BUDGET_MS,
    resultsDir: partial.resultsDir ?? DEFAULT_RESULTS_DIR,
    keepData: partial.keepData ?? false,
    saveHistory: partial.saveHistory ?? false,
  };
}

/** The `npm run chaos` command that runs the same schedule again. */
export function replayCommand(options: ChaosOptions): string {
  const parts = [
    'npm run chaos --',
    `--nodes ${options.nodes}`,
    `--duration ${options.durationSec}`,
    `--seed ${options.seed}`,
  ];
  if (options.powerLoss) parts.push('--power-loss');
  const defaults = defaultFaults(options.powerLoss);
  const sameFaults =
    defaults.length === options.faults.length &&
    defaults.every((kind) => options.faults.includes(kind));
  if (!sameFaults) parts.push(`--faults ${options.faults.join(',')}`);
  if (options.unsafeAckBeforeFsync) parts.push('--unsafe-ack-before-fsync');
  for (const bug of options.plantedBugs) parts.push(`--planted-bug ${bug}`);
  if (options.clients !== options.nodes * CLIENTS_PER_NODE)
    parts.push(`--clients ${options.clients}`);
  if (options.activeKeys !== DEFAULT_ACTIVE_KEYS) parts.push(`--keys ${options.activeKeys}`);
  if (options.maxOpsPerDocument !== DEFAULT_MAX_OPS_PER_DOCUMENT) {
    parts.push(`--max-ops-per-document ${options.maxOpsPerDocument}`);
  }
  return parts.join(' ');
}
