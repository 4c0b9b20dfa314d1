/**
 * A stored document returned to a client: the special members spliced around the stored body
 * bytes, in the order CouchDB 3.x writes them (couch_doc:to_json_obj):
 *
 *   _id, _rev, <body members>, _deleted, _revisions, _revs_info, _conflicts,
 *   _deleted_conflicts, _local_seq, _attachments
 *
 * Each optional member appears only when given. The body is copied, never decoded, so its
 * numbers and escapes come back exactly as stored. Special values are encoded with
 * `JSON.stringify`, except `_attachments`, which the caller passes as raw JSON bytes.
 */
import { spliceObject } from './json.js';
import { formatRev, type Rev, type RevPath } from './rev.js';
import type { RevInfo } from './rev-tree-query.js';

export interface DocumentMeta {
  readonly id: string;
  /** `_rev`: a revision, or a preformatted string such as a local document's `0-N`. */
  readonly rev?: Rev | string;
  readonly deleted?: boolean;
  /** `_revisions` (revs=true). */
  readonly revisions?: RevPath;
  /** `_revs_info` (revs_info=true). */
  readonly revsInfo?: readonly RevInfo[];
  /** `_conflicts` (conflicts=true); omitted when empty, as CouchDB does. */
  readonly conflicts?: readonly Rev[];
  /** `_deleted_conflicts` (deleted_conflicts=true); omitted when empty. */
  readonly deletedConflicts?: readonly Rev[];
  /** `_local_seq` (local_seq=true). */
  readonly localSeq?: number | string;
  /** `_attachments` as a raw JSON object. */
  readonly attachments?: Uint8Array | string;
}

function revText(rev: Rev | string): string {
  return typeof rev === 'string' ? rev : formatRev(rev);
}

function revList(revs: readonly Rev[]): string {
  return JSON.stringify(revs.map(formatRev));
}

/** Returns the trailing special members, comma-separated, in CouchDB's order. */
function trailingMembers(meta: DocumentMeta): string {
  const parts: string[] = [];
  if (meta.deleted === true) parts.push('"_deleted":true');
  if (meta.revisions !== undefined) {
    const revisions = { start: meta.revisions.start, ids: meta.revisions.ids };
    parts.push(`"_revisions":${JSON.stringify(revisions)}`);
  }
  if (meta.revsInfo !== undefined) {
    const infos = meta.revsInfo.map((info) => ({ rev: formatRev(info.rev), status: info.status }));
    parts.push(`"_revs_info":${JSON.stringify(infos)}`);
  }
  if (meta.conflicts !== undefined && meta.conflicts.length > 0) {
    parts.push(`"_conflicts":${revList(meta.conflicts)}`);
  }
  if (meta.deletedConflicts !== undefined && meta.deletedConflicts.length > 0) {
    parts.push(`"_deleted_conflicts":${revList(meta.deletedConflicts)}`);
  }
  if (meta.localSeq !== undefined) parts.push(`"_local_seq":${JSON.stringify(meta.localSeq)}`);
  if (meta.attachments !== undefined) {
    const raw =
      typeof meta.attachments === 'string'
        ? meta.attachments
        : Buffer.from(meta.attachments).toString('utf8');
    parts.push(`"_attachments":${raw}`);
  }
  return parts.join(',');
}

/** Returns the document's JSON bytes: `body` (a minified object) with `meta` spliced in. */
export function renderDocument(body: Uint8Array, meta: DocumentMeta): Buffer {
  let leading = `"_id":${JSON.stringify(meta.id)}`;
  if (meta.rev !== undefined) leading += `,"_rev":${JSON.stringify(revText(meta.rev))}`;
  return spliceObject(body, leading, trailingMembers(meta));
}
