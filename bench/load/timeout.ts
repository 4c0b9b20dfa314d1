/**
 * A bounded wait that leaves no timer behind: once the promise settles, the timer is cleared,
 * so a finished benchmark exits at once instead of waiting for a timer of its longest bound.
 */

/** Resolves with the promise's value, or with `fallback` after `ms`, whichever comes first. */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
