/**
 * Invariant checks for the Raft core. The core imports nothing else of Divan, so it carries its
 * own assertion helper. A failed assertion is a bug in the core or a broken driver contract,
 * never an expected outcome: it throws, and nothing inside the core catches it.
 */

export class RaftInvariantError extends Error {
  override readonly name = 'RaftInvariantError';
}

/** Throws a RaftInvariantError with `message` unless `condition` holds. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === 'string' ? message : message());
  }
}
