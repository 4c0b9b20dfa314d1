/**
 * Reads over many documents, for embedded use: `_all_docs`, `_changes` and `_revs_diff`, with
 * CouchDB 3.x's options and results. Documents come back as JSON bytes built around the stored
 * bodies (read-document.ts).
 *
 * - `_all_docs`: live normal and design documents in id order (UTF-8 bytes), or the given
 *   `keys` in request order, where a missing id gives `{key, error: "not_found"}` and a
 *   deleted one `value.deleted: true` and `doc: null`. `startKey` wins over `startKeyDocId`
 *   and `endKey` over `endKeyDocId`, as in CouchDB, where the key of a row is its id.
 * - `_changes`: one row per document at its latest change, in sequence order, deleted
 *   documents included; `style: 'all_docs'` lists every leaf, winner first. `pending` comes
 *   from the by_seq count reduction, so it costs two node paths, not a scan. Filters: `docIds`,
 *   and a Mango `selector` matched against the winning revision's body.
 * - `_revs_diff`: per id, the revisions the database lacks, with `possible_ancestors`; ids with
 *   nothing missing are left out.
 */
import { formatRev, parseRev } from '../document/rev.js';
import { missingRevisions, possibleAncestors, sortedLeaves } from '../document/rev-tree-query.js';
import { compileSelector, type Selector } from '../document/selector.js';
import type { IdRange } from '../http/backend.js';
import { renderRevision } from './read-document.js';
import type { EngineSnapshot, StoredDocument } from './snapshot.js';

export interface AllDocsQuery {
  /** Read exactly these ids, in this order. */
  readonly keys?: readonly string[];
  readonly startKey?: string;
  readonly endKey?: string;
  readonly startKeyDocId?: string;
  readonly endKeyDocId?: string;
  /** Whether the end key itself is included; true by default. */
  readonly inclusiveEnd?: boolean;
  readonly descending?: boolean;
  readonly limit?: number;
  readonly skip?: number;
  readonly includeDocs?: boolean;
  /** With `includeDocs`: add `_conflicts` to each document. */
  readonly conflicts?: boolean;
  /** Adds the update sequence to the result. */
  readonly updateSeq?: boolean;
}

export type AllDocsRow =
  | {
      readonly id: string;
      readonly key: string;
      readonly value: { readonly rev: string; readonly deleted?: true };
      /** The document with `includeDocs`; null for a deleted one. */
      readonly doc?: Buffer | null;
    }
  | { readonly key: string; readonly error: 'not_found' };

export interface AllDocsResult {
  readonly totalRows: number;
  /** Rows before the first one returned; null with `keys`. */
  readonly offset: number | null;
  readonly rows: readonly AllDocsRow[];
  readonly updateSeq?: string;
}

function allDocsRow(record: StoredDocument, query: AllDocsQuery): AllDocsRow {
  const rev = formatRev(record.winner);
  const row = { id: record.id, key: record.id };
  if (record.deleted) {
    const value = { rev, deleted: true as const };
    return query.includeDocs === true ? { ...row, value, doc: null } : { ...row, value };
  }
  if (query.includeDocs !== true) return { ...row, value: { rev } };
  const doc = renderRevision(record, record.winner, { conflicts: query.conflicts });
  return { ...row, value: { rev }, doc };
}

function rangeOf(query: AllDocsQuery): IdRange {
  return {
    startId: query.startKey ?? query.startKeyDocId,
    endId: query.endKey ?? query.endKeyDocId,
    inclusiveEnd: query.inclusiveEnd ?? true,
    descending: query.descending ?? false,
  };
}

export function allDocs(snapshot: EngineSnapshot, query: AllDocsQuery = {}): AllDocsResult {
  const skip = query.skip ?? 0;
  const limit = query.limit ?? Number.MAX_SAFE_INTEGER;
  const totalRows = snapshot.info().docCount;
  const updateSeq =
    query.updateSeq === true ? { updateSeq: snapshot.formatSeq(snapshot.updateSeq) } : {};
  if (query.keys !== undefined) {
    const keys = query.descending === true ? query.keys.slice().reverse() : query.keys;
    const rows = keys.slice(skip, skip + limit).map((key): AllDocsRow => {
      const record = snapshot.document(key);
      return record === null ? { key, error: 'not_found' } : allDocsRow(record, query);
    });
    return { totalRows, offset: null, rows, ...updateSeq };
  }
  const range = rangeOf(query);
  const before: IdRange = {
    endId: range.startId,
    inclusiveEnd: false,
    descending: range.descending,
  };
  const offset = (range.startId === undefined ? 0 : snapshot.countDocuments(before)) + skip;
  const rows: AllDocsRow[] = [];
  let skipped = 0;
  for (const record of snapshot.documents(range)) {
    if (rows.length >= limit) break;
    if (skipped < skip) {
      skipped += 1;
      continue;
    }
    rows.push(allDocsRow(record, query));
  }
  return { totalRows, offset, rows, ...updateSeq };
}

export interface ChangesQuery {
  /** After this sequence: an integer, a sequence string, or `now`; from the start by default. */
  readonly since?: number | string;
  readonly limit?: number;
  readonly descending?: boolean;
  /** `all_docs` lists every leaf; `main_only` (the default) the winner. */
  readonly style?: 'main_only' | 'all_docs';
  readonly includeDocs?: boolean;
  /** With `includeDocs`: add `_conflicts` to each document. */
  readonly conflicts?: boolean;
  /** The `_doc_ids` filter. */
  readonly docIds?: readonly string[];
  /** The `_selector` filter: a Mango selector, matched against the winning revision. */
  readonly selector?: unknown;
}

export interface ChangeRow {
  readonly seq: string;
  readonly id: string;
  readonly changes: readonly { readonly rev: string }[];
  readonly deleted?: true;
  readonly doc?: Buffer;
}

/**
 * A `_changes` feed over one snapshot. Iterate it for the rows; `lastSeq` and `pending()`
 * then describe where it stopped.
 */
export class ChangesFeed implements Iterable<ChangeRow> {
  readonly #snapshot: EngineSnapshot;
  readonly #query: ChangesQuery;
  readonly #selector: Selector | null;
  readonly #docIds: ReadonlySet<string> | null;
  #last: number;

  constructor(snapshot: EngineSnapshot, query: ChangesQuery = {}) {
    this.#snapshot = snapshot;
    this.#query = query;
    this.#selector = query.selector === undefined ? null : compileSelector(query.selector);
    this.#docIds = query.docIds === undefined ? null : new Set(query.docIds);
    const since = query.since ?? 0;
    this.#last = typeof since === 'number' ? since : snapshot.parseSeq(since);
  }

  /** The sequence of the last row read (or the starting point), as clients see it. */
  get lastSeq(): string {
    return this.#snapshot.formatSeq(this.#last);
  }

  /** Rows after `lastSeq` in the feed's direction, filters not applied. */
  pending(): number {
    return this.#snapshot.pendingAfterSeq(this.#last, this.#query.descending === true);
  }

  *[Symbol.iterator](): Iterator<ChangeRow> {
    const limit = this.#query.limit ?? Number.MAX_SAFE_INTEGER;
    if (limit <= 0) return;
    let emitted = 0;
    const records = this.#snapshot.changesAfter(this.#last, this.#query.descending === true);
    for (const record of records) {
      this.#last = record.updateSeq;
      const row = this.#row(record);
      if (row === null) continue;
      yield row;
      emitted += 1;
      if (emitted >= limit) return;
    }
  }

  #row(record: StoredDocument): ChangeRow | null {
    if (this.#docIds !== null && !this.#docIds.has(record.id)) return null;
    const needsDoc = this.#query.includeDocs === true || this.#selector !== null;
    const doc = needsDoc
      ? renderRevision(record, record.winner, { conflicts: this.#query.conflicts })
      : null;
    if (this.#selector !== null && !this.#selector.matches(JSON.parse(doc!.toString('utf8')))) {
      return null;
    }
    const revs =
      this.#query.style === 'all_docs'
        ? sortedLeaves(record.tree()).map((leaf) => leaf.rev)
        : [record.winner];
    return {
      seq: record.seq,
      id: record.id,
      changes: revs.map((rev) => ({ rev: formatRev(rev) })),
      ...(record.deleted ? { deleted: true as const } : {}),
      ...(this.#query.includeDocs === true && doc !== null ? { doc } : {}),
    };
  }
}

export interface RevsDiffEntry {
  readonly missing: readonly string[];
  readonly possible_ancestors?: readonly string[];
}

/** `_revs_diff`: request `{id: [rev, ...]}`, in request order. */
export function revsDiff(
  snapshot: EngineSnapshot,
  request: ReadonlyArray<readonly [string, readonly string[]]>,
): Array<[string, RevsDiffEntry]> {
  const result: Array<[string, RevsDiffEntry]> = [];
  for (const [id, revTexts] of request) {
    const revs = revTexts.map((text) => parseRev(text));
    const record = snapshot.document(id);
    const tree = record === null ? [] : record.tree();
    const missing = record === null ? revs : missingRevisions(tree, revs);
    if (missing.length === 0) continue;
    const ancestors = record === null ? [] : possibleAncestors(tree, missing);
    const entry: RevsDiffEntry =
      ancestors.length > 0
        ? { missing: missing.map(formatRev), possible_ancestors: ancestors.map(formatRev) }
        : { missing: missing.map(formatRev) };
    result.push([id, entry]);
  }
  return result;
}
