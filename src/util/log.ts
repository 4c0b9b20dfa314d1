/**
 * The process-wide logger. Modules take a child of it bound to their context
 * (`{ node, db, term }`) rather than formatting context into messages.
 */
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Creates the root logger: JSON lines on stderr, level from DIVAN_LOG_LEVEL (default info). */
export function createLogger(bindings: Record<string, unknown> = {}): Logger {
  const level = process.env.DIVAN_LOG_LEVEL ?? 'info';
  return pino({ level, base: { pid: process.pid, ...bindings } }, pino.destination(2));
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
