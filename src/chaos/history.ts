/**
 * What the clients of a chaos run saw. Two views of the same requests:
 * - `records`: one per HTTP request (its client, node, kind, documents, invocation and
 *   completion times, status and outcome), for the report and the minimums;
 * - `checkOps`: one per document touched, in the checker's history format with the document
 *   model, so that each document's operations can be checked for linearizability.
 *
 * Times are milliseconds since the run started, from a monotonic clock. An operation whose
 * outcome is unknown has `return: null` in the checker's view, so it may have taken effect at
 * any point after its call, or never.
 */
import type { Operation } from '../check/model.js';
import type { DocumentInput, DocumentOutput } from '../check/models/document.js';
import { assert } from '../util/assert.js';

export type RequestKind = 'read' | 'create' | 'update' | 'delete' | 'bulk' | 'changes';

/** `ok`: done as asked; `rejected`: a definite refusal (conflict); `failed`: definitely not
 * applied (refused connection, 503 not applied); `unknown`: may or may not have happened. */
export type RequestOutcome = 'ok' | 'rejected' | 'failed' | 'unknown';

export interface RequestRecord {
  readonly id: number;
  /** The client and its process generation, e.g. `c2.1`: a new generation after an unknown. */
  readonly client: string;
  readonly node: string;
  readonly kind: RequestKind;
  readonly keys: readonly string[];
  readonly call: number;
  return: number | null;
  outcome: RequestOutcome | null;
  /** HTTP status, or the transport error code. */
  detail: string;
}

export type CheckOp = Operation<DocumentInput, DocumentOutput>;

export class ClientHistory {
  readonly records: RequestRecord[] = [];
  readonly checkOps: CheckOp[] = [];
  /** Tokens of writes that failed definitely (rejected or not applied). */
  readonly failedTokens = new Map<string, number>();
  /** Every token a write carried, with the request that carried it. */
  readonly writtenTokens = new Map<string, number>();

  constructor(readonly clock: () => number) {}

  /** Opens a record at the current time. */
  begin(client: string, node: string, kind: RequestKind, keys: readonly string[]): RequestRecord {
    const record: RequestRecord = {
      id: this.records.length,
      client,
      node,
      kind,
      keys,
      call: this.clock(),
      return: null,
      outcome: null,
      detail: '',
    };
    this.records.push(record);
    return record;
  }

  /** Closes a record at the current time (for an unknown outcome, when the client gave up). */
  end(record: RequestRecord, outcome: RequestOutcome, detail: string): void {
    assert(record.outcome === null, `request ${record.id} already ended`);
    record.outcome = outcome;
    record.detail = detail;
    record.return = this.clock();
  }

  /** Adds the checker's view of one document of a request that has ended. */
  addCheckOp(
    record: RequestRecord,
    key: string,
    input: DocumentInput,
    output: DocumentOutput | null,
  ): void {
    assert(record.outcome !== null, 'a request ends before its check operations are added');
    this.checkOps.push({
      client: `${record.client}#${record.id}`,
      key,
      input,
      output,
      call: record.call,
      return: output === null ? null : record.return,
    });
    if (input.op === 'create' || input.op === 'update') {
      this.writtenTokens.set(input.value, record.id);
      if (output !== null && 'ok' in output && !output.ok)
        this.failedTokens.set(input.value, record.id);
    }
  }

  /** Adds a read the harness made itself after the run (the converged state). */
  addFinalRead(key: string, output: DocumentOutput, at: number): void {
    this.checkOps.push({
      client: 'final',
      key,
      input: { op: 'read' },
      output,
      call: at,
      return: at,
    });
  }
}
