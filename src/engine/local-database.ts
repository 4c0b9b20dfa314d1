/**
 * `LocalDatabase`: a database file used on its own, as an embedded single-node document store,
 * with no Raft. Commands are applied at increasing indexes without log entries. Concurrent
 * callers are merged into one stage and one header (group commit), as CouchDB's updater merges
 * the requests waiting in its mailbox. While a commit is syncing, new requests queue, and the
 * next stage takes all of them.
 *
 * Every method that writes resolves once its commit is durable. Single-document methods raise
 * the document's error as a `CouchError` (`conflict`, `not_found`, `bad_request`, ...); bulk
 * methods return one result per document. Input is validated before anything is queued, so a
 * rejected request changes nothing in the file.
 */
import { randomBytes } from 'node:crypto';
import { type CompressionOptions, prepareAttachments } from '../document/attachments.js';
import { docKind, validateDocId } from '../document/doc-id.js';
import {
  type DocumentWrite,
  type ParseDocumentOptions,
  parseDocument,
  requireReplicatedRevisions,
} from '../document/document.js';
import { scanObject } from '../document/json.js';
import { NO_REVISIONS, nextLocalRevCounter, parseRev, type RevPath } from '../document/rev.js';
import type { PurgeResult, WriteDocument, WriteResult } from '../http/backend.js';
import { assert } from '../util/assert.js';
import { CouchError, errors } from '../util/couch-error.js';
import { type Command, documentsCommand, purgeCommand } from './commands.js';
import type { CompactionResult } from './compaction.js';
import { type CreateOptions, DatabaseFile, type OpenOptions } from './database-file.js';
import type { AppliedEntry, EntryOutcome } from './outcome.js';
import {
  type BulkGetItem,
  bulkGet,
  type OpenDocumentOptions,
  openDocument,
} from './read-document.js';
import {
  type AllDocsQuery,
  type AllDocsResult,
  allDocs,
  ChangesFeed,
  type ChangesQuery,
  type RevsDiffEntry,
  revsDiff,
} from './read-lists.js';
import type { EngineSnapshot } from './snapshot.js';

/** Standalone entries carry no Raft term. */
const STANDALONE_TERM = 0;
const BOOT_ID_BYTES = 4;
const REQUEST_COUNTER_RADIX = 36;
const GENERATED_ID_BYTES = 16;

/** HTTP statuses of CouchDB's per-document error names. */
const ERROR_STATUS: Readonly<Record<string, number>> = {
  conflict: 409,
  forbidden: 403,
  unauthorized: 401,
  not_found: 404,
  document_too_large: 413,
};
const DEFAULT_ERROR_STATUS = 400;

export interface LocalDatabaseOptions {
  /** Names this process in request ids; `local` when absent. */
  readonly nodeName?: string;
  /** Stages whose fsync may run at once; 1 by default. */
  readonly maxCommitsInFlight?: number;
  /** Limits applied to documents parsed from bytes. */
  readonly parse?: ParseDocumentOptions;
  /** Which attachments are stored gzipped; CouchDB's defaults when absent. */
  readonly attachments?: CompressionOptions;
}

interface Waiting {
  readonly command: Command;
  resolve(entry: AppliedEntry): void;
  reject(error: unknown): void;
}

export interface PutOptions {
  /** The document id when the body has none (a generated one when neither gives it). */
  readonly id?: string;
  /** The `?rev=` of a PUT: the revision to update when the body names none. */
  readonly rev?: string;
  /** False for replication (`new_edits=false`). */
  readonly newEdits?: boolean;
}

/** Raises a failed per-document result as the CouchError a single-document request gives. */
export function resultError(result: Extract<WriteResult, { ok: false }>): CouchError {
  return new CouchError(
    ERROR_STATUS[result.error] ?? DEFAULT_ERROR_STATUS,
    result.error,
    result.reason,
  );
}

export class LocalDatabase {
  readonly file: DatabaseFile;
  readonly #requestPrefix: string;
  readonly #maxInFlight: number;
  readonly #parseOptions: ParseDocumentOptions;
  readonly #compression: CompressionOptions;
  readonly #queue: Waiting[] = [];
  #requestCounter = 0;
  #inFlight = 0;
  #flushScheduled = false;
  /** Submitted commands whose commit has not settled yet. */
  readonly #outstanding = new Set<Promise<AppliedEntry>>();
  #closing = false;

  private constructor(file: DatabaseFile, options: LocalDatabaseOptions) {
    this.file = file;
    const bootId = randomBytes(BOOT_ID_BYTES).toString('hex');
    this.#requestPrefix = `${options.nodeName ?? 'local'}-${bootId}-`;
    this.#maxInFlight = options.maxCommitsInFlight ?? 1;
    this.#parseOptions = options.parse ?? {};
    this.#compression = options.attachments ?? {};
  }

  /**
   * Creates the file. Request ids are generated here and never retried, so the request-id
   * table records nothing unless `requestRetention` is given.
   */
  static async create(
    path: string,
    options: CreateOptions & LocalDatabaseOptions,
  ): Promise<LocalDatabase> {
    const file = await DatabaseFile.create(path, { requestRetention: 0, ...options });
    return new LocalDatabase(file, options);
  }

  static async open(
    path: string,
    options: OpenOptions & LocalDatabaseOptions = {},
  ): Promise<LocalDatabase> {
    return new LocalDatabase(await DatabaseFile.open(path, options), options);
  }

  /** Queues a command for the next group commit; resolves with its outcome once durable. */
  submit(build: (requestId: string) => Command): Promise<AppliedEntry> {
    assert(!this.#closing, () => `database ${this.file.path} is closed`);
    this.#requestCounter += 1;
    const command = build(
      this.#requestPrefix + this.#requestCounter.toString(REQUEST_COUNTER_RADIX),
    );
    const outcome = new Promise<AppliedEntry>((resolve, reject) => {
      this.#queue.push({ command, resolve, reject });
      this.#scheduleFlush();
    });
    this.#outstanding.add(outcome);
    const settle = () => this.#outstanding.delete(outcome);
    outcome.then(settle, settle);
    return outcome;
  }

  /** Writes documents the HTTP layer parsed; one result per document, in request order. */
  async write(request: {
    docs: readonly WriteDocument[];
    newEdits: boolean;
  }): Promise<WriteResult[]> {
    if (request.docs.length === 0) return [];
    const entry = await this.submit((requestId) => documentsCommand(requestId, request));
    return documentResults(entry.outcome);
  }

  /** Parses and writes one document (PUT or POST); raises its error as a CouchError. */
  async put(
    json: Uint8Array | string,
    options: PutOptions = {},
  ): Promise<{ id: string; rev: string }> {
    const newEdits = options.newEdits ?? true;
    const doc = this.#parse(json, options, newEdits);
    const [result] = await this.write({ docs: [doc], newEdits });
    if (!result!.ok) throw resultError(result!);
    return { id: result!.id, rev: result!.rev };
  }

  /**
   * `_bulk_docs`: parses every document first, so one invalid document fails the whole
   * request, then writes them in one command.
   */
  async bulkDocs(
    docs: ReadonlyArray<Uint8Array | string>,
    options: { readonly newEdits?: boolean } = {},
  ): Promise<WriteResult[]> {
    const newEdits = options.newEdits ?? true;
    const parsed = docs.map((json) => this.#parse(json, {}, newEdits));
    return this.write({ docs: parsed, newEdits });
  }

  /** Deletes a document at `rev`; raises `not_found` or `conflict` as CouchDB does. */
  async delete(id: string, rev: string | undefined): Promise<{ id: string; rev: string }> {
    validateDocId(id);
    const record = this.read((snapshot) => snapshot.document(id));
    if (record === null) throw errors.docNotFound('missing');
    if (record.deleted) throw errors.docNotFound('deleted');
    const revisions = rev === undefined ? NO_REVISIONS : revisionsOf(rev);
    const doc: WriteDocument = {
      id,
      kind: docKind(id),
      revisions,
      deleted: true,
      attachments: null,
      body: Buffer.from('{}'),
    };
    const [result] = await this.write({ docs: [doc], newEdits: true });
    if (!result!.ok) throw resultError(result!);
    return { id, rev: result!.rev };
  }

  /** Writes a `_local/` document; its revision counts up as `0-N`. */
  async putLocal(id: string, json: Uint8Array | string, rev?: string): Promise<string> {
    if (docKind(validateDocId(id)) !== 'local') {
      throw errors.badRequest(`${id} is not a _local/ document id.`);
    }
    const doc = this.#parse(json, { id, rev }, true);
    if (nextLocalRevCounter(doc.revisions, false) === null) throw errors.invalidRev();
    const entry = await this.submit((requestId) => ({
      kind: 'local_put',
      requestId,
      id,
      revisions: doc.revisions,
      body: doc.body,
    }));
    return localResult(entry.outcome);
  }

  async deleteLocal(id: string, rev?: string): Promise<string> {
    validateDocId(id);
    const revisions = rev === undefined ? NO_REVISIONS : revisionsOf(rev);
    const entry = await this.submit((requestId) => ({
      kind: 'local_delete',
      requestId,
      id,
      revisions,
    }));
    return localResult(entry.outcome);
  }

  async setRevsLimit(limit: number): Promise<void> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw errors.badRequest('The revs_limit must be a positive integer.');
    }
    checkOk(await this.submit((requestId) => ({ kind: 'revs_limit', requestId, limit })));
  }

  /**
   * Purges revisions (`_purge`): one item per document, in order; resolves with the revisions
   * each purge removed.
   */
  async purge(
    items: ReadonlyArray<{ readonly id: string; readonly revs: readonly string[] }>,
  ): Promise<PurgeResult[]> {
    const docs = items.map((item) => ({
      id: item.id,
      revs: item.revs,
      uuid: randomBytes(GENERATED_ID_BYTES).toString('hex'),
    }));
    const entry = await this.submit((requestId) => purgeCommand(requestId, { docs }));
    if (entry.outcome.kind !== 'purge') throw outcomeError(entry.outcome);
    return [...entry.outcome.results];
  }

  async setPurgedInfosLimit(limit: number): Promise<void> {
    if (!Number.isSafeInteger(limit) || limit < 1) {
      throw errors.badRequest('`purged_infos_limit` must be positive integer');
    }
    checkOk(await this.submit((requestId) => ({ kind: 'purged_infos_limit', requestId, limit })));
  }

  /**
   * Applies a `compact` command, which starts compacting the file (`DatabaseFile.compact`);
   * resolves once the command is durable, while the compaction runs on.
   */
  async requestCompaction(): Promise<void> {
    checkOk(await this.submit((requestId) => ({ kind: 'compact', requestId })));
  }

  /** Applies a `compact` command and resolves when that compaction has swapped the file in. */
  async compact(): Promise<CompactionResult> {
    await this.requestCompaction();
    const running = this.file.compactionDone();
    if (running === null) throw new Error(`compaction of ${this.file.path} did not start`);
    return running;
  }

  async setSecurity(json: Uint8Array | string): Promise<void> {
    const bytes = typeof json === 'string' ? Buffer.from(json) : Buffer.from(json);
    const scanned = scanObject(bytes);
    const security = bytes.subarray(scanned.start, scanned.end);
    checkOk(await this.submit((requestId) => ({ kind: 'security', requestId, security })));
  }

  /** Runs `read` on a fresh snapshot and closes it. */
  read<T>(read: (snapshot: EngineSnapshot) => T): T {
    const snapshot = this.file.snapshot();
    try {
      return read(snapshot);
    } finally {
      snapshot.close();
    }
  }

  get(id: string, options: OpenDocumentOptions = {}): Buffer {
    return this.read((snapshot) => openDocument(snapshot, id, options));
  }

  allDocs(query: AllDocsQuery = {}): AllDocsResult {
    return this.read((snapshot) => allDocs(snapshot, query));
  }

  /** Reads a `_changes` feed to its end: the rows, `last_seq` and `pending`. */
  changes(query: ChangesQuery = {}) {
    return this.read((snapshot) => {
      const feed = new ChangesFeed(snapshot, query);
      const results = [...feed];
      return { results, lastSeq: feed.lastSeq, pending: feed.pending() };
    });
  }

  revsDiff(
    request: ReadonlyArray<readonly [string, readonly string[]]>,
  ): Array<[string, RevsDiffEntry]> {
    return this.read((snapshot) => revsDiff(snapshot, request));
  }

  bulkGet(
    items: readonly BulkGetItem[],
    options: { revs?: boolean; latest?: boolean } = {},
  ): Buffer {
    return this.read((snapshot) => bulkGet(snapshot, items, options));
  }

  /**
   * Resolves true once the update sequence passes `after`, false after `timeoutMs` or when
   * `signal` aborts.
   */
  waitForChange(after: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.file.updateSeq > after) return Promise.resolve(true);
    if (signal?.aborted === true) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (changed: boolean) => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        resolve(changed);
      };
      const onAbort = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      const unsubscribe = this.file.onUpdate((updateSeq) => {
        if (updateSeq > after) finish(true);
      });
      signal?.addEventListener('abort', onAbort);
    });
  }

  /** Waits for queued and in-flight commits, then closes the file. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#outstanding]);
    await this.file.close();
  }

  #parse(json: Uint8Array | string, options: PutOptions, newEdits: boolean): WriteDocument {
    const bytes = typeof json === 'string' ? Buffer.from(json) : json;
    const parsed: DocumentWrite = parseDocument(bytes, this.#parseOptions);
    const id = parsed.id ?? (options.id === undefined ? generatedId() : validateDocId(options.id));
    let revisions: RevPath = parsed.revisions;
    if (options.rev !== undefined && revisions.ids.length === 0)
      revisions = revisionsOf(options.rev);
    const kind = docKind(id);
    if (!newEdits) requireReplicatedRevisions(revisions, kind);
    const attachments =
      parsed.attachments === null || kind === 'local'
        ? null
        : prepareAttachments(parsed.attachments.entries, this.#compression);
    return { ...parsed, id, kind, revisions, attachments };
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#inFlight >= this.#maxInFlight) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.#flush();
    });
  }

  /** Stages every queued command as one batch. */
  #flush(): void {
    if (this.#queue.length === 0 || this.#inFlight >= this.#maxInFlight) return;
    const waiting = this.#queue.splice(0);
    let index = this.file.applied.index;
    const items = waiting.map((item) => ({
      index: ++index,
      term: STANDALONE_TERM,
      command: item.command,
    }));
    let staged: ReturnType<DatabaseFile['stage']>;
    try {
      staged = this.file.stage({ apply: items });
    } catch (error) {
      for (const item of waiting) item.reject(error);
      return;
    }
    this.#inFlight += 1;
    staged.durable
      .then(
        () => {
          waiting.forEach((item, i) => {
            item.resolve(staged.outcomes[i]!);
          });
        },
        (error: unknown) => {
          for (const item of waiting) item.reject(error);
        },
      )
      .finally(() => {
        this.#inFlight -= 1;
        if (this.#queue.length > 0) this.#scheduleFlush();
      });
  }
}

function revisionsOf(rev: string): RevPath {
  const parsed = parseRev(rev);
  return { start: parsed.pos, ids: [parsed.id] };
}

function generatedId(): string {
  return randomBytes(GENERATED_ID_BYTES).toString('hex');
}

function documentResults(outcome: EntryOutcome): WriteResult[] {
  if (outcome.kind === 'documents') return [...outcome.results];
  throw outcomeError(outcome);
}

function localResult(outcome: EntryOutcome): string {
  if (outcome.kind !== 'local') throw outcomeError(outcome);
  if (!outcome.result.ok) throw resultError(outcome.result);
  return outcome.result.rev;
}

function checkOk(entry: AppliedEntry): void {
  if (entry.outcome.kind !== 'ok') throw outcomeError(entry.outcome);
}

function outcomeError(outcome: EntryOutcome): CouchError {
  if (outcome.kind === 'error')
    return new CouchError(DEFAULT_ERROR_STATUS, outcome.error, outcome.reason);
  return errors.internal();
}
