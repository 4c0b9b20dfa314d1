/**
 * `npm run sim -- --seeds N --nodes 3|5`: runs N seeded simulations and prints a summary, one
 * figure per line. Exits 1 on any violation and prints the command that replays the first
 * failing seed; `--seed S` replays one seed and prints its trace hash.
 */
import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { PLANTED_BUGS, type PlantedBug } from '../raft/index.js';
import { type RunResult, runSeed } from './run.js';
import { printSummary, replayCommand } from './summary.js';

const EXIT_VIOLATION = 1;
const EXIT_USAGE = 2;
const DEFAULT_DURATION_MS = 4000;

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return value;
}

interface CliOptions {
  seeds: number;
  start: number;
  seed?: number;
  nodes: string;
  durationMs: number;
  bug?: PlantedBug;
  quiesce?: boolean;
  membership?: boolean;
  history?: string;
}

const program = new Command()
  .name('sim')
  .description('Run the deterministic Raft cluster simulator.')
  .option('--seeds <count>', 'number of seeds to run', positiveInteger, 100)
  .option('--start <seed>', 'first seed', positiveInteger, 1)
  .option('--seed <seed>', 'run only this seed and print its trace hash', positiveInteger)
  .addOption(new Option('--nodes <count>', 'cluster size').choices(['3', '5']).default('3'))
  .option(
    '--duration-ms <ms>',
    'virtual time with clients and faults, in ms',
    positiveInteger,
    DEFAULT_DURATION_MS,
  )
  .addOption(
    new Option('--bug <name>', 'plant a bug the checks must find').choices([...PLANTED_BUGS]),
  )
  .option('--quiesce', 'let idle groups go quiet (default: every other seed)')
  .option('--no-quiesce', 'never let idle groups go quiet')
  .option(
    '--membership',
    'mix membership changes and leadership transfers into every seed (default: 40% of seeds)',
  )
  .option('--no-membership', 'keep the initial membership in every seed')
  .option('--history <file>', 'write the client history of the last seed as JSON')
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE))
  .action((options: CliOptions) => {
    const nodes = Number(options.nodes);
    const seeds = options.seed !== undefined ? [options.seed] : range(options.start, options.seeds);
    const results: RunResult[] = [];
    let firstFailure: RunResult | undefined;
    for (const seed of seeds) {
      const result = runSeed({
        seed,
        nodeCount: nodes,
        durationMs: options.durationMs,
        plantedBugs: options.bug === undefined ? [] : [options.bug],
        quiesce: options.quiesce,
        membership: options.membership,
      });
      results.push(result);
      if (options.seed !== undefined) console.log(`seed ${seed} trace hash: ${result.traceHash}`);
      if (result.violations.length > 0 && firstFailure === undefined) firstFailure = result;
    }
    if (options.history !== undefined) {
      writeFileSync(options.history, `${JSON.stringify({ ops: results.at(-1)?.history ?? [] })}\n`);
    }
    const violations = printSummary(results, (line) => console.log(line));
    if (firstFailure === undefined) return;
    console.log(`first violation, seed ${firstFailure.seed}:`);
    for (const violation of firstFailure.violations) console.log(`  ${violation}`);
    console.log(
      `replay: ${replayCommand(firstFailure.seed, {
        nodes,
        durationMs: options.durationMs,
        bug: options.bug,
        quiesce: options.quiesce,
        membership: options.membership,
      })}`,
    );
    if (violations > 0) process.exit(EXIT_VIOLATION);
  });

function range(start: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start + i);
}

program.parse();
