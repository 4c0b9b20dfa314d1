/**
 * The linearizability checker: Wing and Gong's search with Lowe's memoization, per key, with a
 * time budget, over histories read from JSON and any sequential model. It imports nothing else
 * of Divan; the simulator uses it with the key-value model, and a document model can plug in.
 */
export type { CheckOptions, CheckResult } from './check.js';
export { checkHistory, DEFAULT_BUDGET_MS } from './check.js';
export { HistoryFormatError, parseHistory, readHistory, writeHistory } from './history.js';
export type { History, Model, Operation } from './model.js';
export type { KvInput, KvOutput, KvState } from './models/kv.js';
export { kvModel } from './models/kv.js';
