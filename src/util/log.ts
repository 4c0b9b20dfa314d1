/**
 * The process-wide logger. Modules take a child of it bound to their context
 * (`{ node, db, term }`) rather than formatting context into messages.
 */
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

/**
 * Creates the root logger on stderr: JSON lines, or coloured text lines when DIVAN_LOG_FORMAT
 * is `pretty`; the level comes from DIVAN_LOG_LEVEL (default info).
 */
export function createLogger(bindings: Record<string, unknown> = {}): Logger {
  const level = process.env.DIVAN_LOG_LEVEL ?? 'info';
  const format = process.env.DIVAN_LOG_FORMAT ?? 'json';
  if (format !== 'json' && format !== 'pretty') {
    throw new Error(`DIVAN_LOG_FORMAT must be json or pretty, not "${format}"`);
  }
  // JSON lines go out asynchronously: a write in flight collects the lines logged meanwhile,
  // so a busy node makes one write call for many request lines instead of one each (profiles
  // of 64 clients showed those calls at 4% of a node's busy time). Pino flushes on exit.
  const destination =
    format === 'pretty'
      ? pretty({ destination: 2, sync: true })
      : pino.destination({ dest: 2, sync: false });
  return pino({ level, base: { pid: process.pid, ...bindings } }, destination);
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
