/**
 * `node dist/src/check/cli.js HISTORY.json --model kv [--budget-ms N]`: checks a history for
 * linearizability. Exit codes: 0 linearizable, 1 not linearizable, 2 usage or input error,
 * 3 the time budget ran out.
 */
import { Command, InvalidArgumentError } from 'commander';
import { checkHistory, DEFAULT_BUDGET_MS } from './check.js';
import { readHistory } from './history.js';
import type { Model } from './model.js';
import { kvModel } from './models/kv.js';

const EXIT_NOT_LINEARIZABLE = 1;
const EXIT_USAGE = 2;
const EXIT_TIMEOUT = 3;

const models: Record<string, Model<unknown, unknown, unknown>> = {
  kv: kvModel as unknown as Model<unknown, unknown, unknown>,
};

function positiveInteger(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) {
    throw new InvalidArgumentError('expected a positive integer');
  }
  return value;
}

const program = new Command()
  .name('check')
  .description('Check a JSON history of operations for linearizability.')
  .argument('<history>', 'path of a JSON file { "ops": [...] }')
  .option('--model <name>', `sequential model: ${Object.keys(models).join(', ')}`, 'kv')
  .option(
    '--budget-ms <ms>',
    'time budget for the whole check, in ms',
    positiveInteger,
    DEFAULT_BUDGET_MS,
  )
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : EXIT_USAGE))
  .action((path: string, options: { model: string; budgetMs: number }) => {
    const model = models[options.model];
    if (model === undefined) {
      console.error(
        `unknown model ${JSON.stringify(options.model)}; known: ${Object.keys(models).join(', ')}`,
      );
      process.exit(EXIT_USAGE);
    }
    let history: ReturnType<typeof readHistory>;
    try {
      history = readHistory(path);
    } catch (error) {
      console.error(`cannot read ${path}: ${(error as Error).message}`);
      process.exit(EXIT_USAGE);
    }
    const result = checkHistory(model, history, { budgetMs: options.budgetMs });
    if (result.outcome === 'linearizable') {
      console.log(`linearizable: ${result.operations} operations in ${result.partitions} keys`);
      return;
    }
    console.log(result.report);
    process.exit(result.outcome === 'timeout' ? EXIT_TIMEOUT : EXIT_NOT_LINEARIZABLE);
  });

program.parse();
