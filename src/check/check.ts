/**
 * Checks a whole history: drops unknown read-only operations, partitions by key (a history is
 * linearizable exactly when each key's sub-history is), searches each partition within a shared
 * time budget, and renders a counterexample a person can read.
 */
import type { History, Model, Operation } from './model.js';
import { blockedAfter, checkPartition } from './wgl.js';

export const DEFAULT_BUDGET_MS = 10_000;

export type CheckResult =
  | { readonly outcome: 'linearizable'; readonly partitions: number; readonly operations: number }
  | { readonly outcome: 'timeout'; readonly key: string; readonly report: string }
  | { readonly outcome: 'not_linearizable'; readonly key: string; readonly report: string };

export interface CheckOptions {
  /** Time budget for the whole history, in milliseconds. */
  readonly budgetMs?: number;
}

/** Checks `history` against `model`; the first failing partition decides the outcome. */
export function checkHistory<State, Input, Output>(
  model: Model<State, Input, Output>,
  history: History<Input, Output>,
  options: CheckOptions = {},
): CheckResult {
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS;
  const deadline = Date.now() + budgetMs;
  const partitions = partitionByKey(model, history.ops);
  let operations = 0;
  for (const [key, ops] of partitions) {
    operations += ops.length;
    const result = checkPartition(model, ops, deadline);
    if (result.outcome === 'timeout') {
      const report =
        `linearizability check timed out after ${budgetMs} ms on key ${JSON.stringify(key)} ` +
        `(${ops.length} operations); raise the budget or shorten the history`;
      return { outcome: 'timeout', key, report };
    }
    if (result.outcome === 'not_linearizable') {
      return {
        outcome: 'not_linearizable',
        key,
        report: describeFailure(model, key, ops, result.longestPrefix),
      };
    }
  }
  return { outcome: 'linearizable', partitions: partitions.size, operations };
}

function partitionByKey<State, Input, Output>(
  model: Model<State, Input, Output>,
  ops: readonly Operation<Input, Output>[],
): Map<string, Operation<Input, Output>[]> {
  const partitions = new Map<string, Operation<Input, Output>[]>();
  for (const op of ops) {
    if (op.return === null && model.isReadOnly?.(op.input) === true) continue;
    let list = partitions.get(op.key);
    if (list === undefined) {
      list = [];
      partitions.set(op.key, list);
    }
    list.push(op);
  }
  return partitions;
}

function describeFailure<State, Input, Output>(
  model: Model<State, Input, Output>,
  key: string,
  ops: readonly Operation<Input, Output>[],
  prefix: readonly number[],
): string {
  const lines = [
    `not linearizable: key ${JSON.stringify(key)}, model ${model.name}, ${ops.length} operations`,
    `longest linearizable prefix (${prefix.length} operations), with the state after each:`,
  ];
  let state = model.init();
  for (const index of prefix) {
    const op = ops[index]!;
    const output = op.return === null ? null : op.output;
    state = model.step(state, op.input, output) ?? state;
    lines.push(`  ${describeOp(model, op)}  => ${model.describeState(state)}`);
  }
  lines.push(`from state ${model.describeState(state)} none of these can come next:`);
  for (const index of blockedAfter(ops, prefix)) {
    lines.push(`  ${describeOp(model, ops[index]!)}`);
  }
  return lines.join('\n');
}

function describeOp<State, Input, Output>(
  model: Model<State, Input, Output>,
  op: Operation<Input, Output>,
): string {
  const output = op.return === null ? null : op.output;
  const end = op.return === null ? 'unknown' : String(op.return);
  return `client ${op.client} [${op.call}, ${end}] ${model.describeOperation(op.input, output)}`;
}
