/**
 * A key-value register model: each key has a string value or none. The operations are get, put,
 * delete and compare-and-set. The simulator's clients run this workload, and the chaos harness
 * can use it as an example of a model.
 */
import type { Model } from '../model.js';

export type KvInput =
  | { readonly op: 'get' }
  | { readonly op: 'put'; readonly value: string }
  | { readonly op: 'delete' }
  | { readonly op: 'cas'; readonly expected: string | null; readonly value: string };

export type KvOutput =
  | { readonly value: string | null }
  | { readonly ok: boolean }
  | Record<string, never>;

export type KvState = string | null;

function readValue(output: KvOutput | null): string | null | undefined {
  if (output === null || !('value' in output)) return undefined;
  return output.value;
}

export const kvModel: Model<KvState, KvInput, KvOutput> = {
  name: 'kv',
  init: () => null,
  step(state, input, output) {
    switch (input.op) {
      case 'get': {
        if (output === null) return state;
        return readValue(output) === state ? state : undefined;
      }
      case 'put':
        return input.value;
      case 'delete':
        return null;
      case 'cas': {
        const matches = state === input.expected;
        if (output === null) return matches ? input.value : state;
        const ok = 'ok' in output ? output.ok : undefined;
        if (ok !== matches) return undefined;
        return matches ? input.value : state;
      }
    }
  },
  key: (state) => (state === null ? '\u0000' : `=${state}`),
  describeOperation(input, output) {
    const result = output === null ? '?' : JSON.stringify(output);
    switch (input.op) {
      case 'get':
        return `get -> ${result}`;
      case 'put':
        return `put(${JSON.stringify(input.value)}) -> ${result}`;
      case 'delete':
        return `delete -> ${result}`;
      case 'cas':
        return `cas(${JSON.stringify(input.expected)}, ${JSON.stringify(input.value)}) -> ${result}`;
    }
  },
  describeState: (state) => JSON.stringify(state),
  isReadOnly: (input) => input.op === 'get',
};
