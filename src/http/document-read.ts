/**
 * Reading documents out of a snapshot as CouchDB 3.x returns them: one revision (the winner,
 * `?rev=`, or `latest=true` from a revision), or several (`open_revs`), rendered with the
 * special members the query asks for (`_revisions`, `_revs_info`, `_conflicts`,
 * `_deleted_conflicts`, `_local_seq`, `_attachments`). Bodies are spliced as bytes
 * (src/document/render.ts). Attachments are stubs unless the query asks for their data
 * (`attachments=true`, `atts_since`), and a multipart reply marks them `follows` and returns
 * them with the rendered revision, to be sent as parts.
 *
 * Not-found reasons follow CouchDB: `missing` for a document never written or a revision
 * without a stored body, `deleted` for a deleted document read without `?rev=`.
 */
import {
  type AttachmentReadOptions,
  renderRevisionAttachments,
  STUBS_ONLY,
} from '../document/attachments.js';
import { renderDocument } from '../document/render.js';
import { formatRev, parseRev, type Rev } from '../document/rev.js';
import type { RevLeafValue, RevTree } from '../document/rev-tree.js';
import {
  compareLeavesForWinner,
  conflicts,
  deletedConflicts,
  leavesFrom,
  leavesInTreeOrder,
  revisionPath,
  revsInfo,
} from '../document/rev-tree-query.js';
import { errors } from '../util/couch-error.js';
import type { DocumentRecord, LocalDocumentRecord, StoredAttachment } from './backend.js';
import type { QueryParams } from './query.js';

/** The special members to render. */
export interface ReadOptions {
  readonly revs: boolean;
  readonly revsInfo: boolean;
  readonly conflicts: boolean;
  readonly deletedConflicts: boolean;
  readonly localSeq: boolean;
  readonly attachments: AttachmentReadOptions;
}

export const PLAIN_READ: ReadOptions = Object.freeze({
  revs: false,
  revsInfo: false,
  conflicts: false,
  deletedConflicts: false,
  localSeq: false,
  attachments: STUBS_ONLY,
});

/** Parses a JSON list of revisions (`atts_since`); 400 `Invalid rev format` on a bad one. */
export function parseRevList(values: readonly unknown[]): Rev[] {
  return values.map((value) => parseRev(value));
}

/**
 * Reads `attachments`, `atts_since` and `att_encoding_info`. `atts_since` implies
 * `attachments=true`, as in CouchDB.
 */
export function attachmentOptionsFromQuery(query: QueryParams): AttachmentReadOptions {
  const since = query.jsonArray('atts_since');
  return {
    attachments: since !== undefined || query.boolean('attachments', false),
    attsSince: since === undefined ? null : parseRevList(since.map((item) => item.value)),
    encodingInfo: query.boolean('att_encoding_info', false),
    follows: false,
  };
}

/** Reads the document options of a query; `meta=true` means all three of CouchDB's. */
export function readOptionsFromQuery(query: QueryParams): ReadOptions {
  const meta = query.boolean('meta', false);
  return {
    revs: query.boolean('revs', false),
    revsInfo: meta || query.boolean('revs_info', false),
    conflicts: meta || query.boolean('conflicts', false),
    deletedConflicts: meta || query.boolean('deleted_conflicts', false),
    localSeq: query.boolean('local_seq', false),
    attachments: attachmentOptionsFromQuery(query),
  };
}

/** A rendered revision. */
export interface RenderedRevision {
  readonly rev: Rev;
  readonly bytes: Buffer;
  /** The attachments marked `follows`, to send as multipart parts in this order. */
  readonly followed: readonly StoredAttachment[];
}

/** Renders leaf `rev` of `record`, or returns null when it is not a leaf with a body. */
export function renderRevision(
  record: DocumentRecord,
  rev: Rev,
  options: ReadOptions,
): RenderedRevision | null {
  const content = record.content(rev);
  if (content === null) return null;
  const needsHistory = options.attachments.attsSince !== null && content.attachments.length > 0;
  const needsTree =
    options.revs ||
    options.revsInfo ||
    options.conflicts ||
    options.deletedConflicts ||
    needsHistory;
  const tree: RevTree<RevLeafValue> | null = needsTree ? record.tree() : null;
  const attachments =
    content.attachments.length === 0
      ? null
      : renderRevisionAttachments(
          content.attachments,
          needsHistory && tree !== null ? revisionPath(tree, rev) : null,
          options.attachments,
          (attachment) => attachment.read(0, attachment.encodedLength),
        );
  const bytes = renderDocument(content.body, {
    id: record.id,
    rev,
    deleted: content.deleted,
    revisions: options.revs && tree !== null ? (revisionPath(tree, rev) ?? undefined) : undefined,
    revsInfo: options.revsInfo && tree !== null ? (revsInfo(tree, rev) ?? undefined) : undefined,
    conflicts: options.conflicts && tree !== null ? conflicts(tree) : undefined,
    deletedConflicts:
      options.deletedConflicts && tree !== null ? deletedConflicts(tree) : undefined,
    localSeq: options.localSeq ? record.seq : undefined,
    attachments: attachments?.json,
  });
  return { rev, bytes, followed: attachments?.followed ?? [] };
}

/** Renders the winning revision, deleted or not. */
export function renderWinner(record: DocumentRecord, options: ReadOptions): RenderedRevision {
  const rendered = renderRevision(record, record.winner, options);
  if (rendered === null) throw errors.docNotFound('missing');
  return rendered;
}

/** The leaves `latest=true` reaches from `rev`, winner first; empty when the tree lacks it. */
function latestLeaves(record: DocumentRecord, rev: Rev): Rev[] {
  const leaves = leavesFrom(record.tree(), rev);
  if (leaves === null) return [];
  return leaves.sort(compareLeavesForWinner).map((leaf) => leaf.rev);
}

/**
 * `GET /{db}/{id}`: the winner, or the revision `?rev=` names (followed to its newest leaf
 * with `latest=true`). Raises 404 `missing` or `deleted` as CouchDB does.
 */
export function readDocument(
  record: DocumentRecord | null,
  revText: string | undefined,
  latest: boolean,
  options: ReadOptions,
): RenderedRevision {
  if (record === null) throw errors.docNotFound('missing');
  if (revText === undefined) {
    if (record.deleted) throw errors.docNotFound('deleted');
    return renderWinner(record, options);
  }
  const rev = parseRev(revText);
  const target = latest ? latestLeaves(record, rev)[0] : rev;
  const rendered = target === undefined ? null : renderRevision(record, target, options);
  if (rendered === null) throw errors.docNotFound('missing');
  return rendered;
}

/** One element of an `open_revs` answer. */
export type OpenRevsEntry =
  | { readonly kind: 'ok'; readonly rendered: RenderedRevision }
  | { readonly kind: 'missing'; readonly rev: string };

/**
 * `open_revs`: every leaf for `all`, else each requested revision (or, with `latest`, the
 * leaves it leads to), in request order. Raises 404 `missing` for `all` on an unknown
 * document, as CouchDB does.
 */
export function readOpenRevs(
  record: DocumentRecord | null,
  revs: 'all' | readonly string[],
  latest: boolean,
  options: ReadOptions,
): OpenRevsEntry[] {
  if (revs === 'all') {
    if (record === null) throw errors.docNotFound('missing');
    return leavesInTreeOrder(record.tree()).map((leaf) => okEntry(record, leaf.rev, options));
  }
  const entries: OpenRevsEntry[] = [];
  for (const text of revs) {
    const rev = parseRev(text);
    const targets = record === null ? [] : latest ? latestLeaves(record, rev) : [rev];
    const rendered = targets.map((target) => renderRevision(record!, target, options));
    if (rendered.length === 0 || rendered.some((entry) => entry === null)) {
      entries.push({ kind: 'missing', rev: formatRev(rev) });
      continue;
    }
    for (const entry of rendered) entries.push({ kind: 'ok', rendered: entry! });
  }
  return entries;
}

function okEntry(record: DocumentRecord, rev: Rev, options: ReadOptions): OpenRevsEntry {
  const rendered = renderRevision(record, rev, options);
  if (rendered === null) return { kind: 'missing', rev: formatRev(rev) };
  return { kind: 'ok', rendered };
}

/** Renders a `_local/` document: `_id`, `_rev` (`0-N`) and its body. */
export function renderLocalDocument(record: LocalDocumentRecord): Buffer {
  return renderDocument(record.body, { id: record.id, rev: record.rev });
}

/** Joins JSON values into a JSON array, as bytes. */
export function jsonArray(items: readonly (Buffer | string)[]): Buffer {
  const parts: Buffer[] = [Buffer.from('[')];
  items.forEach((item, index) => {
    if (index > 0) parts.push(Buffer.from(','));
    parts.push(typeof item === 'string' ? Buffer.from(item) : item);
  });
  parts.push(Buffer.from(']'));
  return Buffer.concat(parts);
}

/** `[{"ok":doc}|{"missing":rev}, ...]` for an `open_revs` answer. */
export function openRevsJson(entries: readonly OpenRevsEntry[]): Buffer {
  return jsonArray(
    entries.map((entry) =>
      entry.kind === 'ok'
        ? Buffer.concat([Buffer.from('{"ok":'), entry.rendered.bytes, Buffer.from('}')])
        : JSON.stringify({ missing: entry.rev }),
    ),
  );
}
