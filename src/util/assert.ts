/**
 * Assertions for invariants. A failed assertion is a bug in Divan, never an expected
 * outcome, so it throws an error that callers must not catch and recover from.
 */

export class InvariantError extends Error {
  override readonly name = 'InvariantError';
}

/** Throws an InvariantError with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new InvariantError(typeof message === 'string' ? message : message());
  }
}

/** Marks a branch that the type system proves unreachable. */
export function unreachable(value: never, what: string): never {
  throw new InvariantError(`unreachable: unexpected ${what}: ${String(value)}`);
}
