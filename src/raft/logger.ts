/**
 * The logger the core writes to. The driver injects one bound to its own context (node, group);
 * the default drops everything. The core logs role and term changes at info with their reason and
 * ignored messages at debug, and never logs per entry.
 */

/** A structured logger: a message plus key-value fields, in the shape of pino's methods. */
export interface RaftLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  /** Whether debug lines are kept, so callers can skip building their fields. */
  isDebugEnabled(): boolean;
}

function ignore(): void {}

/** A logger that drops everything. */
export const silentRaftLogger: RaftLogger = {
  debug: ignore,
  info: ignore,
  warn: ignore,
  isDebugEnabled: () => false,
};
