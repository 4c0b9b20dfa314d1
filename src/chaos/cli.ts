/**
 * `npm run chaos -- --nodes 3|5 --duration SECONDS --seed N [options]`: one fault-injection
 * run on real node processes, with its summary on stdout and its JSON report under
 * `chaos/results/`. Exit status: 0 pass, 1 a violation, 2 usage error, 3 too weak (a minimum
 * not met) or the harness could not finish.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { PLANTED_BUGS } from '../raft/index.js';
import { killAllChildren } from './cluster.js';
import { chaosOptions, DEFAULT_CHECK_BUDGET_MS, DEFAULT_RESULTS_DIR } from './options.js';
import { formatSummary } from './report.js';
import { runChaos } from './run.js';
import { FAULT_KINDS, type FaultKind } from './schedule.js';

const EXIT_VIOLATION = 1;
const EXIT_USAGE = 2;
const EXIT_INCONCLUSIVE = 3;
/** 128 + SIGINT, as shells report an interrupted command. */
const EXIT_INTERRUPTED = 130;

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0)
    throw new InvalidArgumentError('expected a positive integer');
  return value;
}

function nonNegativeInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0)
    throw new InvalidArgumentError('expected an integer >= 0');
  return value;
}

function faultList(text: string): FaultKind[] {
  const kinds = text.split(',').map((kind) => kind.trim());
  for (const kind of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(kind)) {
      throw new InvalidArgumentError(
        `unknown fault kind "${kind}"; expected some of ${FAULT_KINDS.join(', ')}`,
      );
    }
  }
  return kinds as FaultKind[];
}

interface CliOptions {
  nodes: string;
  duration: number;
  seed: number;
  powerLoss?: boolean;
  faults?: FaultKind[];
  plantedBug?: string[];
  unsafeAckBeforeFsync?: boolean;
  clients?: number;
  keys?: number;
  maxOpsPerDocument?: number;
  checkBudgetMs: number;
  results: string;
  keepData?: boolean;
  saveHistory?: boolean;
}

const program = new Command()
  .name('chaos')
  .description('Inject faults into real Divan nodes and check what the clients saw.')
  .addOption(new Option('--nodes <count>', 'cluster size').choices(['3', '5']).default('3'))
  .option('--duration <seconds>', 'length of the fault phase, in seconds', positiveInteger, 60)
  .option('--seed <n>', 'seed of the fault schedule and the workload', nonNegativeInteger, 1)
  .option('--power-loss', 'journal synced lengths and cut unsynced writes at crashes')
  .option(
    '--faults <kinds>',
    `comma-separated fault kinds (default: all that apply): ${FAULT_KINDS.join(', ')}`,
    faultList,
  )
  .addOption(
    new Option('--planted-bug <name>', 'plant a Raft core bug in every node (repeatable)')
      .choices([...PLANTED_BUGS])
      .argParser((value: string, previous: string[] = []) => [...previous, value]),
  )
  .option('--unsafe-ack-before-fsync', 'plant the bug that acknowledges appends before fsync')
  .option('--clients <count>', 'concurrent clients (default: 2 per node)', positiveInteger)
  .option('--keys <count>', 'documents in use at once', positiveInteger)
  .option(
    '--max-ops-per-document <count>',
    'client operations per document before it retires',
    positiveInteger,
  )
  .option(
    '--check-budget-ms <ms>',
    'time budget of the linearizability check, in ms',
    positiveInteger,
    DEFAULT_CHECK_BUDGET_MS,
  )
  .option('--results <dir>', 'directory of the JSON reports', DEFAULT_RESULTS_DIR)
  .option('--keep-data', 'keep the nodes\u2019 data directories and logs after the run')
  .option('--save-history', 'also write every request and the checker history next to the report')
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE))
  .action(async (flags: CliOptions) => {
    let options: ReturnType<typeof chaosOptions>;
    try {
      options = chaosOptions({
        nodes: flags.nodes === '5' ? 5 : 3,
        durationSec: flags.duration,
        seed: flags.seed,
        powerLoss: flags.powerLoss === true,
        ...(flags.faults === undefined ? {} : { faults: flags.faults }),
        plantedBugs: flags.plantedBug ?? [],
        unsafeAckBeforeFsync: flags.unsafeAckBeforeFsync === true,
        ...(flags.clients === undefined ? {} : { clients: flags.clients }),
        ...(flags.keys === undefined ? {} : { activeKeys: flags.keys }),
        ...(flags.maxOpsPerDocument === undefined
          ? {}
          : { maxOpsPerDocument: flags.maxOpsPerDocument }),
        checkBudgetMs: flags.checkBudgetMs,
        resultsDir: flags.results,
        keepData: flags.keepData === true,
        saveHistory: flags.saveHistory === true,
      });
    } catch (error) {
      console.error((error as Error).message);
      process.exit(EXIT_USAGE);
    }
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        console.error(`[chaos] ${signal}: killing the node processes and stopping`);
        killAllChildren();
        process.exit(EXIT_INTERRUPTED);
      });
    }
    const { report, path } = await runChaos(options, (line) => console.error(`[chaos] ${line}`));
    console.log(formatSummary(report, path));
    if (report.verdict === 'violation') process.exit(EXIT_VIOLATION);
    if (report.verdict !== 'pass') process.exit(EXIT_INCONCLUSIVE);
  });

await program.parseAsync();
