/**
 * Reconnect delays: exponential backoff with jitter, capped. Attempt n (from 0) waits a
 * random time in [d/2, d), where d = min(initial · 2^n, max), so nodes that lost each other at
 * the same moment do not redial in lockstep, and a delay never drops below half its step.
 */

/** Returns the delay before reconnect attempt `attempt` (0 for the first). */
export function reconnectDelayMs(
  attempt: number,
  initialDelayMs: number,
  maxDelayMs: number,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(attempt, 30);
  const step = Math.min(initialDelayMs * 2 ** exponent, maxDelayMs);
  return step / 2 + random() * (step / 2);
}
