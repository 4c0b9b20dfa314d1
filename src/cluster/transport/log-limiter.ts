/**
 * Rate limiting for log lines that can repeat without bound: failed handshakes and garbage on
 * the peer port (which a remote party triggers at will), or a handler that throws on every
 * message. At most `maxPerWindow` lines per window are written, then one line per window with
 * the number suppressed. Counters, not logs, record every event.
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
    if (this.#admit()) this.logger.warn(fields, message);
  }

  /** Logs `message` at error with `fields`, unless the window's quota is used up. */
  error(fields: Record<string, unknown>, message: string): void {
    if (this.#admit()) this.logger.error(fields, message);
  }

  /** Returns whether one more line fits in the current window, counting it. */
  #admit(): boolean {
    const now = this.now();
    if (now - this.#windowStart >= this.windowMs) {
      if (this.#suppressed > 0) {
        this.logger.warn({ suppressed: this.#suppressed }, 'suppressed repeated log lines');
      }
      this.#windowStart = now;
      this.#loggedInWindow = 0;
      this.#suppressed = 0;
    }
    if (this.#loggedInWindow >= this.maxPerWindow) {
      this.#suppressed += 1;
      return false;
    }
    this.#loggedInWindow += 1;
    return true;
  }
}
