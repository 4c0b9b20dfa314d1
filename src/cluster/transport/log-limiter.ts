/**
 * Rate limiting for warnings a remote party can trigger at will (failed handshakes, garbage
 * on the peer port): at most `maxPerWindow` lines per window, then one line per window saying
 * how many were suppressed. Never blocks or drops the events themselves; counters do that.
 */
import type { Logger } from '../../util/log.js';

export class LogLimiter {
  #windowStart = 0;
  #loggedInWindow = 0;
  #suppressed = 0;

  constructor(
    readonly logger: Logger,
    readonly maxPerWindow: number,
    readonly windowMs: number,
    readonly now: () => number = Date.now,
  ) {}

  /** Logs `message` at warn with `fields`, unless the window's quota is used up. */
  warn(fields: Record<string, unknown>, message: string): void {
    const now = this.now();
    if (now - this.#windowStart >= this.windowMs) {
      if (this.#suppressed > 0) {
        this.logger.warn({ suppressed: this.#suppressed }, 'suppressed repeated warnings');
      }
      this.#windowStart = now;
      this.#loggedInWindow = 0;
      this.#suppressed = 0;
    }
    if (this.#loggedInWindow >= this.maxPerWindow) {
      this.#suppressed += 1;
      return;
    }
    this.#loggedInWindow += 1;
    this.logger.warn(fields, message);
  }
}
