/**
 * The checks of a chaos run over what the clients saw and what the nodes hold at the end:
 * - linearizability of each document's history under the document model (the checker of
 *   `src/check`, one document at a time within a shared time budget);
 * - no write that failed definitely (conflict, 503 not applied, refused connection) is ever
 *   visible, in a read or in the final state;
 * - one revision id always names one token (revision ids are deterministic, tokens unique);
 * - every acknowledged write is in the final revision history of its document;
 * - the minimums that make a run strong enough to mean something.
 *
 * Replica comparisons (convergence, identical replicas, reopening) live in `final-state.ts`.
 * Each check returns violations as values; none throws for what it finds.
 */
import { checkHistory } from '../check/check.js';
import { documentModel } from '../check/models/document.js';
import type { FinalDocument } from './final-state.js';
import type { CheckOp, ClientHistory, RequestRecord } from './history.js';
import type { FaultEvent } from './nemesis.js';
import type { FaultKind } from './schedule.js';

export type ViolationKind =
  | 'linearizability'
  | 'check_timeout'
  | 'failed_write_visible'
  | 'revision_identity'
  | 'lost_write'
  | 'divergence'
  | 'no_convergence'
  | 'reopen'
  | 'no_availability_after_heal'
  | 'node_exit'
  | 'fsync_failure_ignored'
  | 'fsync_failure_exit'
  | 'restart_failed'
  | 'server_error';

export interface Violation {
  readonly kind: ViolationKind;
  readonly message: string;
  /** The document concerned, when there is one. */
  readonly key?: string;
  /** Ids of the requests involved (see the report's request list). */
  readonly requests?: readonly number[];
}

/** At most this many failing documents are searched and reported. */
const MAX_REPORTED_KEYS = 5;

export interface LinearizabilityResult {
  readonly violations: Violation[];
  readonly documents: number;
  readonly operations: number;
  readonly elapsedMs: number;
}

/** Checks each document's history; stops after `MAX_REPORTED_KEYS` failing documents. */
export function checkLinearizability(
  history: ClientHistory,
  budgetMs: number,
): LinearizabilityResult {
  const started = Date.now();
  const deadline = started + budgetMs;
  const byKey = new Map<string, CheckOp[]>();
  for (const op of history.checkOps) {
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  const violations: Violation[] = [];
  for (const [key, ops] of byKey) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) {
      violations.push({
        kind: 'check_timeout',
        key,
        message: `the linearizability check ran out of its ${budgetMs} ms budget before document ${key}`,
      });
      break;
    }
    const result = checkHistory(documentModel, { ops }, { budgetMs: remaining });
    if (result.outcome === 'linearizable') continue;
    violations.push({
      kind: result.outcome === 'timeout' ? 'check_timeout' : 'linearizability',
      key,
      message: result.report,
      requests: requestIds(ops),
    });
    if (result.outcome === 'timeout' || violations.length >= MAX_REPORTED_KEYS) break;
  }
  return {
    violations,
    documents: byKey.size,
    operations: history.checkOps.length,
    elapsedMs: Date.now() - started,
  };
}

/** Finds tokens of definitely failed writes in reads and in the final state. */
export function checkFailedWritesInvisible(
  history: ClientHistory,
  finalState: ReadonlyMap<string, FinalDocument>,
): Violation[] {
  const violations: Violation[] = [];
  for (const op of history.checkOps) {
    const output = op.output;
    if (op.return === null || output === null || !('found' in output) || !output.found) continue;
    const failed = history.failedTokens.get(output.value);
    if (failed === undefined) continue;
    violations.push({
      kind: 'failed_write_visible',
      key: op.key,
      message: `read by ${op.client} at ${op.call.toFixed(0)} ms saw ${output.value}, written by request ${failed}, which failed definitely`,
      requests: [failed, requestIdOf(op)],
    });
  }
  for (const [key, document] of finalState) {
    const failed = document.token === null ? undefined : history.failedTokens.get(document.token);
    if (failed === undefined) continue;
    violations.push({
      kind: 'failed_write_visible',
      key,
      message: `the final state of ${key} holds ${document.token}, written by request ${failed}, which failed definitely`,
      requests: [failed],
    });
  }
  return violations;
}

/** Checks that no revision id was seen with two different tokens. */
export function checkRevisionIdentity(history: ClientHistory): Violation[] {
  const tokenOf = new Map<string, { token: string; op: CheckOp }>();
  const violations: Violation[] = [];
  const note = (key: string, rev: string, token: string, op: CheckOp) => {
    const name = `${key}@${rev}`;
    const seen = tokenOf.get(name);
    if (seen === undefined) {
      tokenOf.set(name, { token, op });
      return;
    }
    if (seen.token === token) return;
    violations.push({
      kind: 'revision_identity',
      key,
      message: `revision ${rev} of ${key} was seen with ${seen.token} (${seen.op.client}) and with ${token} (${op.client})`,
      requests: [requestIdOf(seen.op), requestIdOf(op)],
    });
  };
  for (const op of history.checkOps) {
    const output = op.output;
    if (op.return === null || output === null) continue;
    if ('found' in output && output.found) note(op.key, output.rev, output.value, op);
    if ('ok' in output && output.ok && (op.input.op === 'create' || op.input.op === 'update')) {
      note(op.key, output.rev, op.input.value, op);
    }
  }
  return violations;
}

/** Checks that every acknowledged write's revision is in its document's final history. */
export function checkAcknowledgedWritesKept(
  history: ClientHistory,
  finalState: ReadonlyMap<string, FinalDocument>,
  when: string,
): Violation[] {
  const violations: Violation[] = [];
  for (const op of history.checkOps) {
    const output = op.output;
    if (op.return === null || output === null || !('ok' in output) || !output.ok) continue;
    const document = finalState.get(op.key);
    if (document?.history.has(output.rev) === true) continue;
    violations.push({
      kind: 'lost_write',
      key: op.key,
      message: `${when}: the acknowledged ${op.input.op} of ${op.key} by ${op.client} (revision ${output.rev}) is not in the document's history${document === undefined ? ' (document missing)' : ` (winner ${document.rev})`}`,
      requests: [requestIdOf(op)],
    });
  }
  return violations;
}

export interface Minimums {
  /** Mean client operations per document. */
  readonly opsPerDocument: number;
  /** Share of client operations that overlapped another client's on the same document. */
  readonly concurrentShare: number;
  /** Requests that completed as asked. */
  readonly okRequests: number;
}

/** Smallest values a run must reach, else it fails as too weak to mean anything. */
export const MINIMUMS: Minimums = {
  opsPerDocument: 8,
  concurrentShare: 0.1,
  okRequests: 200,
};

export interface MinimumsResult {
  readonly measured: Minimums;
  readonly firedKinds: Readonly<Partial<Record<FaultKind, number>>>;
  readonly notAvailable: readonly FaultKind[];
  /** The minimums not met, in words; empty when every minimum is met. */
  readonly shortfalls: readonly string[];
}

export function checkMinimums(
  records: readonly RequestRecord[],
  history: ClientHistory,
  events: readonly FaultEvent[],
  kinds: readonly FaultKind[],
): MinimumsResult {
  const measured = measure(records, history);
  const shortfalls: string[] = [];
  if (measured.opsPerDocument < MINIMUMS.opsPerDocument) {
    shortfalls.push(
      `${measured.opsPerDocument.toFixed(1)} operations per document, fewer than ${MINIMUMS.opsPerDocument}`,
    );
  }
  if (measured.concurrentShare < MINIMUMS.concurrentShare) {
    shortfalls.push(
      `${percent(measured.concurrentShare)} of operations overlapped another client's on the same document, fewer than ${percent(MINIMUMS.concurrentShare)}`,
    );
  }
  if (measured.okRequests < MINIMUMS.okRequests) {
    shortfalls.push(`${measured.okRequests} requests succeeded, fewer than ${MINIMUMS.okRequests}`);
  }
  const firedKinds: Partial<Record<FaultKind, number>> = {};
  const notAvailable = new Set<FaultKind>();
  for (const event of events) {
    if (event.result === 'fired') firedKinds[event.kind] = (firedKinds[event.kind] ?? 0) + 1;
    if (event.result === 'not_available') notAvailable.add(event.kind);
  }
  for (const kind of kinds) {
    if (firedKinds[kind] !== undefined || notAvailable.has(kind)) continue;
    shortfalls.push(`fault kind ${kind} never fired`);
  }
  return { measured, firedKinds, notAvailable: [...notAvailable], shortfalls };
}

function measure(records: readonly RequestRecord[], history: ClientHistory): Minimums {
  const byKey = new Map<string, CheckOp[]>();
  for (const op of history.checkOps) {
    if (op.client === 'final') continue;
    const list = byKey.get(op.key) ?? [];
    list.push(op);
    byKey.set(op.key, list);
  }
  let operations = 0;
  let concurrent = 0;
  for (const ops of byKey.values()) {
    operations += ops.length;
    concurrent += countOverlapping(ops);
  }
  return {
    opsPerDocument: byKey.size === 0 ? 0 : operations / byKey.size,
    concurrentShare: operations === 0 ? 0 : concurrent / operations,
    okRequests: records.filter((record) => record.outcome === 'ok').length,
  };
}

/** Operations whose interval overlaps an operation of another client (unknown: open-ended). */
function countOverlapping(ops: readonly CheckOp[]): number {
  const sorted = [...ops].sort((a, b) => a.call - b.call);
  let count = 0;
  for (let i = 0; i < sorted.length; i++) {
    const op = sorted[i]!;
    const end = op.return ?? Number.POSITIVE_INFINITY;
    const client = clientOf(op);
    const overlaps = sorted.some((other, j) => {
      if (j === i || clientOf(other) === client) return false;
      const otherEnd = other.return ?? Number.POSITIVE_INFINITY;
      return other.call < end && op.call < otherEnd;
    });
    if (overlaps) count++;
  }
  return count;
}

function clientOf(op: CheckOp): string {
  return String(op.client).split('.')[0]!;
}

function requestIdOf(op: CheckOp): number {
  const text = String(op.client);
  const at = text.lastIndexOf('#');
  return at < 0 ? -1 : Number(text.slice(at + 1));
}

function requestIds(ops: readonly CheckOp[]): number[] {
  return [...new Set(ops.map(requestIdOf).filter((id) => id >= 0))];
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}
