/**
 * The types of the linearizability checker: a history of operations and a sequential model.
 * A history is what clients observed: each operation's call and return times, its input and
 * its output, or `return: null` when the outcome is unknown (a timeout, a lost connection, a
 * lost leadership). An unknown operation may have taken effect at any time after its call, or
 * never. Nothing here depends on Raft or Divan, so any system's history can be checked.
 */

export interface Operation<Input = unknown, Output = unknown> {
  /** The client (process) that issued the operation; one client runs one operation at a time. */
  readonly client: number | string;
  /** The partition key: operations on different keys are checked independently. */
  readonly key: string;
  readonly input: Input;
  /** The observed output; ignored when the outcome is unknown. */
  readonly output: Output | null;
  /** Invocation time, in any unit shared by the whole history. */
  readonly call: number;
  /** Completion time, or null when the outcome is unknown. */
  readonly return: number | null;
}

export interface History<Input = unknown, Output = unknown> {
  readonly ops: readonly Operation<Input, Output>[];
}

/**
 * A sequential specification. `step` returns the state after applying `input` in `state` when
 * it can produce `output`, or undefined when it cannot. With `output` null (unknown outcome) it
 * returns the state after the operation takes effect.
 */
export interface Model<State, Input, Output> {
  readonly name: string;
  init(): State;
  step(state: State, input: Input, output: Output | null): State | undefined;
  /** A canonical string for a state: equal states have equal keys (memoization). */
  key(state: State): string;
  describeOperation(input: Input, output: Output | null): string;
  describeState(state: State): string;
  /** Whether an operation never changes the state; unknown read-only operations are dropped. */
  isReadOnly?(input: Input): boolean;
}
