/**
 * Reading and writing histories as JSON: `{ "ops": [{ client, key, input, output, call,
 * return }] }`, with `return: null` for an unknown outcome.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { History, Operation } from './model.js';

export class HistoryFormatError extends Error {
  override readonly name = 'HistoryFormatError';
}

/** Parses and validates a history; throws HistoryFormatError naming the first bad operation. */
export function parseHistory(text: string): History {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || !Array.isArray((value as History).ops)) {
    throw new HistoryFormatError('invalid history: expected an object with an "ops" array');
  }
  const ops = (value as { ops: unknown[] }).ops;
  for (const [index, op] of ops.entries()) validateOperation(op, index);
  return { ops: ops as Operation[] };
}

function validateOperation(op: unknown, index: number): void {
  const fail = (what: string): never => {
    throw new HistoryFormatError(`invalid history: operation ${index}: ${what}`);
  };
  if (typeof op !== 'object' || op === null) fail('not an object');
  const record = op as Record<string, unknown>;
  if (typeof record.client !== 'number' && typeof record.client !== 'string')
    fail('missing client');
  if (typeof record.key !== 'string') fail('key must be a string');
  if (!('input' in record)) fail('missing input');
  if (typeof record.call !== 'number') fail('call must be a number');
  const returned = record.return;
  if (returned !== null && typeof returned !== 'number') fail('return must be a number or null');
  if (typeof returned === 'number' && returned < (record.call as number)) {
    fail('return is before call');
  }
}

export function readHistory(path: string): History {
  return parseHistory(readFileSync(path, 'utf8'));
}

export function writeHistory(path: string, history: History): void {
  writeFileSync(path, `${JSON.stringify(history)}\n`);
}
