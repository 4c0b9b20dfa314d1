/**
 * One HTTP client of a chaos run: it sends its requests to one node, one at a time, and
 * records each in the run's `ClientHistory`, with the checker's view of every document the
 * request touched.
 *
 * How responses map to outcomes (the contract `docs/operations.md` gives clients):
 * - 2xx: done; 409 (conflict) and 404 on a write: rejected, nothing changed (a 404 for the
 *   database itself only says the write was not applied);
 * - 503 `unknown_outcome`, 500, a timeout, a reset or a connection closed mid-request:
 *   unknown, the write may or may not have happened;
 * - 503 `service_unavailable` on a write ("it was not applied"), 400, or a refused
 *   connection: failed, nothing changed.
 * After an unknown outcome the client continues as a new process generation (`c1.0`, `c1.1`,
 * ...), because its unknown operation stays pending forever in the checker's view.
 */
import type { DocumentInput, DocumentOutput } from '../check/models/document.js';
import type { SimRandom } from '../sim/random.js';
import type { ChaosNode } from './cluster.js';
import type { ClientHistory, RequestKind, RequestOutcome, RequestRecord } from './history.js';
import type { HttpOutcome, NodeHttp } from './http.js';
import {
  type ClientMemory,
  type DocumentWrite,
  type KeyPool,
  type PlannedRequest,
  planRequest,
} from './workload.js';

/** Longest pause between two requests of a client, in ms, so the nodes are not saturated. */
const MAX_THINK_MS = 10;
/** The reason of a 404 for the database itself, which says nothing about the document. */
const DATABASE_MISSING_REASON = 'Database does not exist.';
/** Pause after a refused connection (the node is down), so a client does not spin. */
const REFUSED_BACKOFF_MS = 250;

export interface ClientContext {
  readonly db: string;
  readonly http: NodeHttp;
  readonly history: ClientHistory;
  readonly pool: KeyPool;
  /** Client timeout per request, in ms; above the node's write timeout so its 503s show. */
  readonly timeoutMs: number;
  /** Server errors (500) and bad requests (400) seen, which a correct node never sends here. */
  readonly anomalies: string[];
}

type WriteResult = { outcome: RequestOutcome; output: DocumentOutput | null };

export class ChaosClient {
  #generation = 0;
  #stopped = false;

  constructor(
    readonly name: string,
    readonly node: ChaosNode,
    readonly random: SimRandom,
    readonly memory: ClientMemory,
    readonly context: ClientContext,
  ) {}

  /** Runs requests until `stop()`; resolves once the request in flight has ended. */
  async run(): Promise<void> {
    while (!this.#stopped) {
      const request = planRequest(this.random, this.context.pool, this.memory);
      const refused = await this.#execute(request);
      await pause(refused ? REFUSED_BACKOFF_MS : this.random.int(0, MAX_THINK_MS));
    }
  }

  stop(): void {
    this.#stopped = true;
  }

  get process(): string {
    return `${this.name}.${this.#generation}`;
  }

  /** Sends one planned request; returns whether the node refused the connection. */
  async #execute(request: PlannedRequest): Promise<boolean> {
    this.#refused = false;
    await this.#dispatch(request);
    return this.#refused;
  }

  #refused = false;

  async #dispatch(request: PlannedRequest): Promise<void> {
    switch (request.kind) {
      case 'read':
        return this.#read(request.key);
      case 'write':
        return this.#write(request.write);
      case 'bulk':
        return this.#bulk(request.writes);
      case 'changes':
        return this.#changes(request.keys);
    }
  }

  async #send(method: string, path: string, body?: unknown): Promise<HttpOutcome> {
    const response = await this.context.http.send(
      this.node.httpPort,
      method,
      path,
      body,
      this.context.timeoutMs,
    );
    if (response.kind === 'failure' && !response.maybeDelivered) this.#refused = true;
    return response;
  }

  #begin(kind: RequestKind, keys: readonly string[]): RequestRecord {
    return this.context.history.begin(this.process, this.node.name, kind, keys);
  }

  #end(record: RequestRecord, outcome: RequestOutcome, detail: string): void {
    this.context.history.end(record, outcome, detail);
    if (outcome === 'unknown') this.#generation++;
  }

  async #read(key: string): Promise<void> {
    const record = this.#begin('read', [key]);
    const response = await this.#send('GET', `/${this.context.db}/${key}`);
    if (response.kind === 'response' && response.status === 200) {
      const doc = response.json as { _rev: string; v: string };
      this.#end(record, 'ok', '200');
      this.context.history.addCheckOp(
        record,
        key,
        { op: 'read' },
        { found: true, value: doc.v, rev: doc._rev },
      );
      this.memory.sawLive(key, { token: doc.v, rev: doc._rev });
      return;
    }
    const documentMissing =
      response.kind === 'response' &&
      response.status === 404 &&
      reasonOf(response) !== DATABASE_MISSING_REASON;
    if (documentMissing) {
      this.#end(record, 'ok', '404');
      this.context.history.addCheckOp(record, key, { op: 'read' }, { found: false });
      this.memory.sawMissing(key);
      return;
    }
    // A read that did not complete changes nothing and is dropped by the checker.
    this.#end(record, readFailure(response), describe(response));
    this.#noteAnomaly(record, response);
  }

  async #write(write: DocumentWrite): Promise<void> {
    const record = this.#begin(write.op, [write.key]);
    const path = `/${this.context.db}/${write.key}`;
    const response =
      write.op === 'delete'
        ? await this.#send('DELETE', `${path}?rev=${encodeURIComponent(write.expected.rev)}`)
        : await this.#send('PUT', path, documentBody(write));
    const result = classifyWrite(response);
    this.#end(record, result.outcome, describe(response));
    this.#noteAnomaly(record, response);
    const output =
      result.outcome === 'ok'
        ? { ok: true as const, rev: (response as { json: { rev: string } }).json.rev }
        : result.output;
    this.#recordWrite(record, write, output);
  }

  async #bulk(writes: readonly DocumentWrite[]): Promise<void> {
    const record = this.#begin(
      'bulk',
      writes.map((write) => write.key),
    );
    const response = await this.#send('POST', `/${this.context.db}/_bulk_docs`, {
      docs: writes.map(bulkDocument),
    });
    const whole = classifyWrite(response);
    const rows = bulkRows(response);
    if (whole.outcome !== 'ok' || rows === null) {
      this.#end(record, whole.outcome === 'ok' ? 'unknown' : whole.outcome, describe(response));
      this.#noteAnomaly(record, response);
      for (const write of writes)
        this.#recordWrite(record, write, whole.outcome === 'ok' ? null : whole.output);
      return;
    }
    const outputs = writes.map((write) => bulkOutput(rows, write.key));
    const anyRejected = outputs.some((output) => output !== null && 'ok' in output && !output.ok);
    this.#end(record, anyRejected ? 'rejected' : 'ok', describe(response));
    for (const [i, write] of writes.entries()) this.#recordWrite(record, write, outputs[i]!);
  }

  async #changes(keys: readonly string[]): Promise<void> {
    const record = this.#begin('changes', keys);
    const response = await this.#send('GET', `/${this.context.db}/_changes?include_docs=true`);
    if (response.kind !== 'response' || response.status !== 200) {
      this.#end(record, readFailure(response), describe(response));
      this.#noteAnomaly(record, response);
      return;
    }
    this.#end(record, 'ok', '200');
    const rows = new Map<string, ChangesRow>();
    for (const row of (response.json as { results: ChangesRow[] }).results) rows.set(row.id, row);
    // One snapshot of the whole database, projected on each document in use at the call.
    for (const key of keys) {
      const row = rows.get(key);
      const output: DocumentOutput =
        row === undefined || row.deleted === true || row.doc === undefined
          ? { found: false }
          : { found: true, value: row.doc.v, rev: row.doc._rev };
      this.context.history.addCheckOp(record, key, { op: 'read' }, output);
    }
  }

  #recordWrite(record: RequestRecord, write: DocumentWrite, output: DocumentOutput | null): void {
    this.context.history.addCheckOp(record, write.key, checkInput(write), output);
    if (output === null || !('ok' in output)) return;
    if (!output.ok) return;
    if (write.op === 'delete') this.memory.sawMissing(write.key);
    else this.memory.sawLive(write.key, { token: write.value, rev: output.rev });
  }

  #noteAnomaly(record: RequestRecord, response: HttpOutcome): void {
    if (response.kind !== 'response') return;
    if (response.status === 500 || response.status === 400) {
      this.context.anomalies.push(
        `request ${record.id} (${record.kind} on ${record.node}): ${response.status} ${response.body.slice(0, 200)}`,
      );
    }
  }
}

interface ChangesRow {
  readonly id: string;
  readonly deleted?: boolean;
  readonly doc?: { readonly _rev: string; readonly v: string };
}

interface BulkRow {
  readonly id: string;
  readonly ok?: boolean;
  readonly rev?: string;
  readonly error?: string;
}

function documentBody(write: DocumentWrite): Record<string, unknown> {
  if (write.op === 'create') return { v: write.value };
  if (write.op === 'update') return { _rev: write.expected.rev, v: write.value };
  return {};
}

function bulkDocument(write: DocumentWrite): Record<string, unknown> {
  if (write.op === 'delete') return { _id: write.key, _rev: write.expected.rev, _deleted: true };
  return { _id: write.key, ...documentBody(write) };
}

function checkInput(write: DocumentWrite): DocumentInput {
  switch (write.op) {
    case 'create':
      return { op: 'create', value: write.value };
    case 'update':
      return {
        op: 'update',
        expected: write.expected.token,
        value: write.value,
        rev: write.expected.rev,
      };
    case 'delete':
      return { op: 'delete', expected: write.expected.token, rev: write.expected.rev };
  }
}

/** Classifies a single-document write's response (see the header). */
function classifyWrite(response: HttpOutcome): WriteResult {
  if (response.kind === 'failure') {
    return response.maybeDelivered
      ? { outcome: 'unknown', output: null }
      : { outcome: 'failed', output: { ok: false, reason: 'not_applied' } };
  }
  const { status } = response;
  if (status === 200 || status === 201) return { outcome: 'ok', output: null };
  if (status === 404 && reasonOf(response) === DATABASE_MISSING_REASON) {
    return { outcome: 'failed', output: { ok: false, reason: 'not_applied' } };
  }
  if (status === 409 || status === 404)
    return { outcome: 'rejected', output: { ok: false, reason: 'conflict' } };
  if (status === 503 && errorName(response) === 'service_unavailable') {
    return { outcome: 'failed', output: { ok: false, reason: 'not_applied' } };
  }
  if (status === 400) return { outcome: 'failed', output: { ok: false, reason: 'not_applied' } };
  return { outcome: 'unknown', output: null };
}

/** A read that did not complete: failed when it certainly never ran, else unknown. */
function readFailure(response: HttpOutcome): RequestOutcome {
  if (response.kind === 'response') return 'failed';
  return response.maybeDelivered ? 'unknown' : 'failed';
}

function bulkRows(response: HttpOutcome): BulkRow[] | null {
  if (response.kind !== 'response' || response.status !== 201 || !Array.isArray(response.json))
    return null;
  return response.json as BulkRow[];
}

function bulkOutput(rows: readonly BulkRow[], key: string): DocumentOutput | null {
  const row = rows.find((candidate) => candidate.id === key);
  if (row === undefined) return null;
  if (row.ok === true && typeof row.rev === 'string') return { ok: true, rev: row.rev };
  if (row.error === 'conflict' || row.error === 'not_found')
    return { ok: false, reason: 'conflict' };
  return null;
}

function reasonOf(response: HttpOutcome): string | undefined {
  if (response.kind !== 'response') return undefined;
  const json = response.json as { reason?: unknown } | undefined;
  return typeof json?.reason === 'string' ? json.reason : undefined;
}

function errorName(response: HttpOutcome): string | undefined {
  if (response.kind !== 'response') return undefined;
  const json = response.json as { error?: unknown } | undefined;
  return typeof json?.error === 'string' ? json.error : undefined;
}

function describe(response: HttpOutcome): string {
  if (response.kind === 'failure') return response.code;
  const error = errorName(response);
  return error === undefined ? String(response.status) : `${response.status} ${error}`;
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
