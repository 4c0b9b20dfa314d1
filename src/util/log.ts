/**
 * The process-wide logger. Modules take a child of it bound to their context
 * (`{ node, db, term }`) rather than formatting context into messages.
 */
import { createRequire } from 'node:module';
import { type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/** Bytes of JSON log lines buffered before a write. */
const LOG_BUFFER_BYTES = 4096;
/** Maximum time a JSON log line waits in the buffer. */
const LOG_FLUSH_MS = 200;

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
  if (format === 'pretty') {
    // Loaded only for this format: most nodes log JSON and would pay for loading it at start.
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    return pino(
      { level, base: { pid: process.pid, ...bindings } },
      pretty({ destination: 2, sync: true }),
    );
  }
  // JSON lines collect in a buffer, written when it reaches LOG_BUFFER_BYTES, every LOG_FLUSH_MS
  // and at exit. A write call per request line took up to 15% of a node's busy time in profiles
  // of small requests. A node killed with SIGKILL loses the lines of its last LOG_FLUSH_MS.
  const destination = pino.destination({ dest: 2, sync: false, minLength: LOG_BUFFER_BYTES });
  const flusher = setInterval(() => {
    try {
      destination.flush();
    } catch {
      clearInterval(flusher); // the destination has ended (the process is exiting)
    }
  }, LOG_FLUSH_MS);
  flusher.unref();
  return pino({ level, base: { pid: process.pid, ...bindings } }, destination);
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: 'silent' });
