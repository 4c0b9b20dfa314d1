/**
 * The Wing and Gong search for a linearization, with Lowe's memoization, over the operations
 * of one partition (one key).
 *
 * Call and return events are sorted by time into a doubly linked list. The search walks from
 * the head and tries each call as the next linearized operation. If the model accepts it, and
 * the pair (set of linearized operations, new state) was not seen before, the operation goes on
 * a stack, its two events are unlinked, and the walk restarts at the head. Reaching a return
 * event means the operation it ends could not be placed before it, so the last choice is undone
 * and the next candidate tried. The history is linearizable once the list is empty.
 *
 * Operations with an unknown outcome return at +Infinity, so they can also be linearized after
 * everything else, which is the same as never taking effect.
 */
import type { Model, Operation } from './model.js';

const BUDGET_CHECK_INTERVAL = 1024;
const BITS_PER_WORD = 32;

export type PartitionResult =
  | { readonly outcome: 'linearizable' }
  | { readonly outcome: 'timeout' }
  | {
      readonly outcome: 'not_linearizable';
      /** The longest sequence of operations that could be linearized, in order. */
      readonly longestPrefix: readonly number[];
    };

interface Frame<State> {
  readonly call: number;
  readonly state: State;
}

/**
 * Searches for a linearization of `ops` (one partition) under `model`, giving up at
 * `deadline` (milliseconds since the epoch).
 */
export function checkPartition<State, Input, Output>(
  model: Model<State, Input, Output>,
  ops: readonly Operation<Input, Output>[],
  deadline: number,
): PartitionResult {
  const count = ops.length;
  const events = sortEvents(ops);
  const eventCount = events.length;
  const head = eventCount;
  // Doubly linked list over event slots; slot `head` is the sentinel.
  const next = new Int32Array(eventCount + 1);
  const prev = new Int32Array(eventCount + 1);
  const returnOf = new Int32Array(count);
  for (let i = 0; i < eventCount; i++) {
    next[i] = i + 1 < eventCount ? i + 1 : -1;
    prev[i] = i === 0 ? head : i - 1;
    const event = events[i]!;
    if (!event.isCall) returnOf[event.op] = i;
  }
  next[head] = eventCount > 0 ? 0 : -1;

  const lift = (slot: number): void => {
    const match = returnOf[events[slot]!.op]!;
    for (const at of [slot, match]) {
      next[prev[at]!] = next[at]!;
      if (next[at] !== -1) prev[next[at]!] = prev[at]!;
    }
  };
  const unlift = (slot: number): void => {
    const match = returnOf[events[slot]!.op]!;
    for (const at of [match, slot]) {
      next[prev[at]!] = at;
      if (next[at] !== -1) prev[next[at]!] = at;
    }
  };

  const linearized = new Uint32Array(Math.ceil(count / BITS_PER_WORD) || 1);
  const seen = new Set<string>();
  const stack: Frame<State>[] = [];
  let state = model.init();
  let longest: number[] = [];
  let entry = next[head]!;
  let iterations = 0;

  while (next[head] !== -1) {
    if (++iterations % BUDGET_CHECK_INTERVAL === 0 && Date.now() > deadline) {
      return { outcome: 'timeout' };
    }
    const event = events[entry]!;
    if (event.isCall) {
      const op = ops[event.op]!;
      const output = op.return === null ? null : op.output;
      const after = model.step(state, op.input, output);
      if (after !== undefined) {
        toggle(linearized, event.op);
        const key = `${bitsetKey(linearized)}|${model.key(after)}`;
        if (!seen.has(key)) {
          seen.add(key);
          stack.push({ call: entry, state });
          if (stack.length > longest.length) longest = stack.map((frame) => events[frame.call]!.op);
          state = after;
          lift(entry);
          entry = next[head]!;
          continue;
        }
        toggle(linearized, event.op);
      }
      entry = next[entry]!;
      continue;
    }
    const frame = stack.pop();
    if (frame === undefined) {
      return { outcome: 'not_linearizable', longestPrefix: longest };
    }
    state = frame.state;
    toggle(linearized, events[frame.call]!.op);
    unlift(frame.call);
    entry = next[frame.call]!;
  }
  return { outcome: 'linearizable' };
}

/**
 * Returns the operations that had returned, right after the longest prefix, without being
 * placeable: the first return events not in the prefix.
 */
export function blockedAfter(ops: readonly Operation[], prefix: readonly number[]): number[] {
  const placed = new Set(prefix);
  const lastCall = prefix.length > 0 ? Math.max(...prefix.map((i) => ops[i]!.call)) : -Infinity;
  const pending = ops
    .map((op, index) => ({ op, index }))
    .filter(({ op, index }) => !placed.has(index) && op.return !== null)
    .sort((a, b) => (a.op.return ?? 0) - (b.op.return ?? 0));
  const firstReturn = pending[0]?.op.return ?? Number.POSITIVE_INFINITY;
  return pending
    .filter(({ op }) => op.call <= Math.max(firstReturn, lastCall))
    .slice(0, 5)
    .map(({ index }) => index);
}

interface Event {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
}

function sortEvents(ops: readonly Operation[]): Event[] {
  const events: Event[] = [];
  ops.forEach((op, index) => {
    events.push({ op: index, isCall: true, time: op.call });
    events.push({ op: index, isCall: false, time: op.return ?? Number.POSITIVE_INFINITY });
  });
  // At equal times calls come first: touching operations count as concurrent, which is the
  // permissive reading when timestamps are coarse.
  events.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    return a.op - b.op;
  });
  return events;
}

function toggle(bits: Uint32Array, index: number): void {
  const word = index >>> 5;
  bits[word] = bits[word]! ^ (1 << (index & 31));
}

function bitsetKey(bits: Uint32Array): string {
  let key = '';
  for (let i = 0; i < bits.length; i++) key += `${bits[i]!.toString(36)},`;
  return key;
}
