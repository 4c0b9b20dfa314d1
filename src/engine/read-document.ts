/**
 * Opening documents from a snapshot as CouchDB 3.x returns them, for embedded use: one
 * revision (the winner, `rev`, or `latest` from a revision), several (`open_revs`), `_local/`
 * documents, and `_bulk_get`. The result is JSON bytes with the special members spliced
 * around the stored body (src/document/render.ts), so the body is never decoded.
 *
 * Attachments are stubs unless `attachments` asks for their data (base64, decoded), which
 * `attsSince` limits to attachments newer than the revisions the reader has.
 *
 * Not-found reasons follow CouchDB: `missing` for a document never written or a revision
 * without a stored body, `deleted` for a deleted document read without `rev`. Errors are
 * `CouchError`s.
 */
import { renderRevisionAttachments } from '../document/attachments.js';
import { LOCAL_PREFIX } from '../document/doc-id.js';
import { renderDocument } from '../document/render.js';
import { formatRev, parseRev, type Rev } from '../document/rev.js';
import {
  compareLeavesForWinner,
  conflicts,
  deletedConflicts,
  leavesFrom,
  leavesInTreeOrder,
  revisionPath,
  revsInfo,
} from '../document/rev-tree-query.js';
import { errors, isCouchError } from '../util/couch-error.js';
import type { EngineSnapshot, StoredDocument } from './snapshot.js';

export interface OpenDocumentOptions {
  /** A revision to read instead of the winner. */
  readonly rev?: string;
  /** With `rev` or `openRevs`: read the leaves the revision leads to instead. */
  readonly latest?: boolean;
  /** `all` or a list of revisions: returns an array of `{ok: doc}` / `{missing: rev}`. */
  readonly openRevs?: 'all' | readonly string[];
  readonly revs?: boolean;
  readonly revsInfo?: boolean;
  readonly conflicts?: boolean;
  readonly deletedConflicts?: boolean;
  readonly localSeq?: boolean;
  /** Include the data of attachments (base64) instead of stubs. */
  readonly attachments?: boolean;
  /** Revisions the reader has: attachments up to the newest of them stay stubs. */
  readonly attsSince?: readonly string[];
  /** Show `encoding` and `encoded_length` of gzipped attachments. */
  readonly attEncodingInfo?: boolean;
}

/** Renders leaf `rev` of a document, or returns null when it is not a leaf. */
export function renderRevision(
  record: StoredDocument,
  rev: Rev,
  options: OpenDocumentOptions,
): Buffer | null {
  const content = record.content(rev);
  if (content === null) return null;
  const attsSince = options.attsSince?.map((text) => parseRev(text)) ?? null;
  const wantsHistory = attsSince !== null && content.attachments.length > 0;
  const wantsTree =
    options.revs === true ||
    options.revsInfo === true ||
    options.conflicts === true ||
    options.deletedConflicts === true ||
    wantsHistory;
  const tree = wantsTree ? record.tree() : null;
  const attachments =
    content.attachments.length === 0
      ? undefined
      : renderRevisionAttachments(
          content.attachments,
          wantsHistory && tree ? revisionPath(tree, rev) : null,
          {
            attachments: options.attachments === true || attsSince !== null,
            attsSince,
            encodingInfo: options.attEncodingInfo === true,
            follows: false,
          },
          (attachment) => attachment.read(0, attachment.encodedLength),
        ).json;
  return renderDocument(content.body, {
    id: record.id,
    rev,
    deleted: content.deleted,
    revisions: options.revs === true && tree ? (revisionPath(tree, rev) ?? undefined) : undefined,
    revsInfo: options.revsInfo === true && tree ? (revsInfo(tree, rev) ?? undefined) : undefined,
    conflicts: options.conflicts === true && tree ? conflicts(tree) : undefined,
    deletedConflicts:
      options.deletedConflicts === true && tree ? deletedConflicts(tree) : undefined,
    localSeq: options.localSeq === true ? record.updateSeq : undefined,
    attachments,
  });
}

/** Returns the leaves `latest` reaches from `rev`, winner first; none when the tree lacks `rev`. */
function latestLeaves(record: StoredDocument, rev: Rev): Rev[] {
  const leaves = leavesFrom(record.tree(), rev);
  if (leaves === null) return [];
  return leaves.sort(compareLeavesForWinner).map((leaf) => leaf.rev);
}

function openLocal(snapshot: EngineSnapshot, id: string): Buffer {
  const local = snapshot.localDocument(id);
  if (local === null) throw errors.docNotFound('missing');
  return renderDocument(local.body, { id, rev: local.rev });
}

function openOne(record: StoredDocument | null, options: OpenDocumentOptions): Buffer {
  if (record === null) throw errors.docNotFound('missing');
  if (options.rev === undefined) {
    if (record.deleted) throw errors.docNotFound('deleted');
    const rendered = renderRevision(record, record.winner, options);
    if (rendered === null) throw errors.docNotFound('missing');
    return rendered;
  }
  const rev = parseRev(options.rev);
  const target = options.latest === true ? latestLeaves(record, rev)[0] : rev;
  const rendered = target === undefined ? null : renderRevision(record, target, options);
  if (rendered === null) throw errors.docNotFound('missing');
  return rendered;
}

/** One element of an `open_revs` result. */
export type OpenRevsEntry =
  | { readonly kind: 'ok'; readonly rev: Rev; readonly doc: Buffer }
  | { readonly kind: 'missing'; readonly rev: string };

/** `open_revs`: every leaf for `all`, else each requested revision, in request order. */
export function openRevisions(
  record: StoredDocument | null,
  revs: 'all' | readonly string[],
  options: OpenDocumentOptions,
): OpenRevsEntry[] {
  const entry = (rev: Rev): OpenRevsEntry => {
    const doc = record === null ? null : renderRevision(record, rev, options);
    return doc === null ? { kind: 'missing', rev: formatRev(rev) } : { kind: 'ok', rev, doc };
  };
  if (revs === 'all') {
    if (record === null) throw errors.docNotFound('missing');
    return leavesInTreeOrder(record.tree()).map((leaf) => entry(leaf.rev));
  }
  const entries: OpenRevsEntry[] = [];
  for (const text of revs) {
    const rev = parseRev(text);
    let targets: Rev[] = [];
    if (record !== null) targets = options.latest === true ? latestLeaves(record, rev) : [rev];
    const rendered = targets.map(entry);
    if (rendered.length === 0 || rendered.some((item) => item.kind === 'missing')) {
      entries.push({ kind: 'missing', rev: formatRev(rev) });
    } else {
      entries.push(...rendered);
    }
  }
  return entries;
}

function openRevsJson(entries: readonly OpenRevsEntry[]): Buffer {
  const parts: Buffer[] = [Buffer.from('[')];
  entries.forEach((entry, index) => {
    if (index > 0) parts.push(Buffer.from(','));
    if (entry.kind === 'ok') parts.push(Buffer.from('{"ok":'), entry.doc, Buffer.from('}'));
    else parts.push(Buffer.from(JSON.stringify({ missing: entry.rev })));
  });
  parts.push(Buffer.from(']'));
  return Buffer.concat(parts);
}

/**
 * `GET /{db}/{id}` with its options: the document's JSON bytes, or with `openRevs` a JSON
 * array of `{ok: doc}` and `{missing: rev}`. Raises `not_found` as CouchDB does.
 */
export function openDocument(
  snapshot: EngineSnapshot,
  id: string,
  options: OpenDocumentOptions = {},
): Buffer {
  if (id.startsWith(LOCAL_PREFIX)) return openLocal(snapshot, id);
  const record = snapshot.document(id);
  if (options.openRevs !== undefined) {
    return openRevsJson(openRevisions(record, options.openRevs, options));
  }
  return openOne(record, options);
}

/** One item of a `_bulk_get` request. */
export interface BulkGetItem {
  readonly id: string;
  readonly rev?: string;
}

/** `_bulk_get`: `{"results":[{"id","docs":[{"ok":doc} | {"error":{...}}]}]}` as bytes. */
export function bulkGet(
  snapshot: EngineSnapshot,
  items: readonly BulkGetItem[],
  options: { readonly revs?: boolean; readonly latest?: boolean } = {},
): Buffer {
  const readOptions: OpenDocumentOptions = { revs: options.revs, latest: options.latest };
  const parts: Buffer[] = [Buffer.from('{"results":[')];
  items.forEach((item, index) => {
    if (index > 0) parts.push(Buffer.from(','));
    parts.push(Buffer.from(`{"id":${JSON.stringify(item.id)},"docs":`));
    parts.push(bulkGetDocs(snapshot, item, readOptions));
    parts.push(Buffer.from('}'));
  });
  parts.push(Buffer.from(']}'));
  return Buffer.concat(parts);
}

function bulkGetError(id: string, rev: string, error: { error: string; reason: string }): string {
  return JSON.stringify({ error: { id, rev, error: error.error, reason: error.reason } });
}

function bulkGetDocs(
  snapshot: EngineSnapshot,
  item: BulkGetItem,
  options: OpenDocumentOptions,
): Buffer {
  const revLabel = item.rev ?? 'undefined';
  try {
    const record = snapshot.document(item.id);
    if (item.rev === undefined) {
      const doc = openOne(record, options);
      return Buffer.concat([Buffer.from('[{"ok":'), doc, Buffer.from('}]')]);
    }
    const entries = openRevisions(record, [item.rev], options);
    const parts = entries.map((entry) =>
      entry.kind === 'ok'
        ? Buffer.concat([Buffer.from('{"ok":'), entry.doc, Buffer.from('}')])
        : Buffer.from(bulkGetError(item.id, entry.rev, errors.docNotFound('missing'))),
    );
    return Buffer.concat([Buffer.from('['), joinWithCommas(parts), Buffer.from(']')]);
  } catch (error) {
    if (!isCouchError(error)) throw error;
    return Buffer.from(`[${bulkGetError(item.id, revLabel, error)}]`);
  }
}

function joinWithCommas(parts: readonly Buffer[]): Buffer {
  const joined: Buffer[] = [];
  parts.forEach((part, index) => {
    if (index > 0) joined.push(Buffer.from(','));
    joined.push(part);
  });
  return Buffer.concat(joined);
}
