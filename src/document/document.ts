/**
 * A client's document turned into a typed write request, with the validation of CouchDB 3.x
 * (couch_doc:from_json_obj_validate). The body is never decoded: only the special `_` members
 * are parsed, each from its own byte span, and the stored body is the object without them,
 * minified.
 *
 * Top-level members are handled in the order they appear, as CouchDB does, so the first bad
 * member decides the error and a repeated member is handled each time:
 * - `_id`: validated (doc-id.ts); the last one wins.
 * - `_rev`: parsed as `N-<id>` when no revision is known yet, ignored otherwise (even when
 *   invalid), so `_revisions` before `_rev` wins.
 * - `_revisions`: `{start, ids}`; replaces any earlier `_rev`. `start` must be a JSON integer
 *   and `ids` an array of revision id strings.
 * - `_deleted`: must be `true` or `false`.
 * - `_attachments`: must be an object; entries that are not objects are skipped, as CouchDB
 *   skips them. Each entry is recognised as a stub, inline data or a multipart `follows`, and
 *   the raw member is kept for the attachments layer.
 * - `_conflicts`, `_deleted_conflicts`, `_revs_info`, `_local_seq`: accepted and ignored.
 * - `_replication_state`, `_replication_state_time`, `_replication_state_reason`,
 *   `_replication_id`, `_replication_stats`: kept in the body (replicator documents).
 * - any other member starting with `_`: `doc_validation` / `Bad special document member: _x`.
 * A member of the wrong type among `_deleted`, `_attachments` and `_revisions` is also a bad
 * special member, because CouchDB has no clause for it either.
 *
 * Finally the stored body must not exceed the maximum document size (CouchDB's
 * `max_document_size`, 8,000,000 bytes by default), else `document_too_large`.
 *
 * What this does not do: decide conflicts (rev-edit.ts), compute revision ids (revid.ts),
 * check that a `?rev=` query parameter agrees with the body, or store attachments.
 */
import { errors } from '../util/couch-error.js';
import { type DocKind, docKind, validateDocId } from './doc-id.js';
import {
  buildObject,
  decodeMember,
  decodeSpan,
  type JsonMember,
  kindAt,
  memberValueBytes,
  type ScannedValue,
  scanJson,
  scanObject,
} from './json.js';
import { canonicalRevId, NO_REVISIONS, type RevPath, tryParseRev } from './rev.js';

/** CouchDB 3.x's default `max_document_size`, in bytes of the stored body. */
export const DEFAULT_MAX_DOCUMENT_SIZE = 8_000_000;

export type AttachmentKind = 'stub' | 'inline' | 'follows';

/** One entry of `_attachments`, recognised but not yet validated or stored. */
export interface AttachmentEntry {
  readonly name: string;
  readonly kind: AttachmentKind;
  /** `content_type`, or null when absent or not a string. */
  readonly contentType: string | null;
  /** `digest` (for example `md5-<base64>`), or null. */
  readonly digest: string | null;
  /** `length`, or null. */
  readonly length: number | null;
  /** `revpos`, or null. */
  readonly revpos: number | null;
  /** `encoding` (for example `gzip`), or null. */
  readonly encoding: string | null;
  /** Base64 `data` of an inline attachment; null for the other kinds. */
  readonly data: string | null;
}

export interface DocumentAttachments {
  /** The `_attachments` value, minified. */
  readonly raw: Buffer;
  /** The object entries in order. */
  readonly entries: readonly AttachmentEntry[];
}

export interface DocumentWrite {
  /** `_id` from the body, or null (POST generates one, PUT takes the URL's). */
  readonly id: string | null;
  /** Kind of `id`, or null when there is no id. */
  readonly kind: DocKind | null;
  /** `_rev` or `_revisions`; `NO_REVISIONS` when the body named neither. */
  readonly revisions: RevPath;
  readonly deleted: boolean;
  readonly attachments: DocumentAttachments | null;
  /** The stored body: the object without its special members, minified. */
  readonly body: Buffer;
}

export interface ParseDocumentOptions {
  /** Maximum JSON nesting depth (see json.ts). */
  readonly maxDepth?: number;
  /** Maximum stored body size in bytes; `DEFAULT_MAX_DOCUMENT_SIZE` when absent. */
  readonly maxDocumentSize?: number;
  /** Maximum id length in UTF-8 bytes; unlimited when absent. */
  readonly maxIdLength?: number;
}

/** Special members CouchDB accepts and drops. */
const IGNORED_MEMBERS: ReadonlySet<string> = new Set([
  '_conflicts',
  '_deleted_conflicts',
  '_revs_info',
  '_local_seq',
]);

/** Special members CouchDB keeps in the body, for replicator documents. */
const BODY_MEMBERS: ReadonlySet<string> = new Set([
  '_replication_state',
  '_replication_state_time',
  '_replication_state_reason',
  '_replication_id',
  '_replication_stats',
]);

const JSON_INTEGER = /^-?(0|[1-9][0-9]*)$/;
const UNDERSCORE = '_';
/** First byte of the literal `true`. */
const TRUE_FIRST_BYTE = 0x74;

interface DocumentFields {
  id: string | null;
  revisions: RevPath;
  deleted: boolean;
  attachments: DocumentAttachments | null;
}

/**
 * Parses a document from request bytes (or an object already scanned, such as an element of
 * `_bulk_docs`) and raises CouchDB's error for the first problem found.
 */
export function parseDocument(
  input: Uint8Array | ScannedValue,
  options: ParseDocumentOptions = {},
): DocumentWrite {
  const scanned =
    input instanceof Uint8Array ? scanObject(input, { maxDepth: options.maxDepth }) : input;
  if (scanned.kind !== 'object') throw errors.notAnObject();

  const fields: DocumentFields = {
    id: null,
    revisions: NO_REVISIONS,
    deleted: false,
    attachments: null,
  };
  const special = new Set<JsonMember>();
  for (const member of scanned.members) {
    if (!member.key.startsWith(UNDERSCORE) || BODY_MEMBERS.has(member.key)) continue;
    special.add(member);
    applySpecialMember(scanned, member, fields, options);
  }

  const body = buildObject(scanned, (member) => !special.has(member));
  const maxDocumentSize = options.maxDocumentSize ?? DEFAULT_MAX_DOCUMENT_SIZE;
  if (body.length > maxDocumentSize) throw errors.documentTooLarge(fields.id ?? '');

  return {
    id: fields.id,
    kind: fields.id === null ? null : docKind(fields.id),
    revisions: fields.revisions,
    deleted: fields.deleted,
    attachments: fields.attachments,
    body,
  };
}

function applySpecialMember(
  scanned: ScannedValue,
  member: JsonMember,
  fields: DocumentFields,
  options: ParseDocumentOptions,
): void {
  const kind = kindAt(scanned.bytes, member.valueStart);
  switch (member.key) {
    case '_id':
      fields.id = validateDocId(decodeMember(scanned, member), options);
      return;
    case '_rev':
      if (fields.revisions.ids.length === 0 && fields.revisions.start === 0) {
        const rev = tryParseRev(decodeMember(scanned, member));
        if (rev === null) throw errors.invalidRev();
        fields.revisions = { start: rev.pos, ids: [rev.id] };
      }
      return;
    case '_deleted':
      if (kind !== 'boolean') throw errors.badSpecialMember(member.key);
      fields.deleted = scanned.bytes[member.valueStart] === TRUE_FIRST_BYTE;
      return;
    case '_revisions':
      if (kind !== 'object') throw errors.badSpecialMember(member.key);
      fields.revisions = parseRevisions(scanned, member);
      return;
    case '_attachments':
      if (kind !== 'object') throw errors.badSpecialMember(member.key);
      fields.attachments = parseAttachments(scanned, member);
      return;
    default:
      if (IGNORED_MEMBERS.has(member.key)) return;
      throw errors.badSpecialMember(member.key);
  }
}

/** Returns the first member named `key`, the one CouchDB's `couch_util:get_value` finds. */
function firstMember(object: ScannedValue, key: string): JsonMember | undefined {
  return object.members.find((member) => member.key === key);
}

function parseRevisions(scanned: ScannedValue, member: JsonMember): RevPath {
  const object = scanJson(scanned.bytes, { start: member.valueStart, end: member.end });
  const startMember = firstMember(object, 'start');
  const idsMember = firstMember(object, 'ids');

  const startText =
    startMember === undefined
      ? ''
      : scanned.bytes.toString('latin1', startMember.valueStart, startMember.end);
  const start = Number(startText);
  if (!JSON_INTEGER.test(startText) || !Number.isSafeInteger(start)) {
    throw errors.docValidation("_revisions.start isn't an integer.");
  }
  if (idsMember === undefined || kindAt(scanned.bytes, idsMember.valueStart) !== 'array') {
    throw errors.docValidation("_revisions.ids isn't a array.");
  }

  const rawIds = decodeSpan(scanned.bytes, idsMember.valueStart, idsMember.end) as unknown[];
  const ids = rawIds.map((rawId) => {
    if (typeof rawId !== 'string') throw errors.docValidation("RevId isn't a string");
    const id = canonicalRevId(rawId);
    if (id === null) throw errors.docValidation("RevId isn't a valid hexadecimal");
    return id;
  });
  // NOTE: CouchDB accepts a `start` below the number of ids and then stores revisions at
  // positions of 0 or less; Divan rejects such a history.
  if (ids.length > 0 && start < ids.length) {
    throw errors.docValidation('_revisions.start is less than the number of revision ids.');
  }
  return { start, ids };
}

function optionalString(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function optionalNumber(value: unknown): number | null {
  return typeof value === 'number' ? value : null;
}

function parseAttachments(scanned: ScannedValue, member: JsonMember): DocumentAttachments {
  const object = scanJson(scanned.bytes, { start: member.valueStart, end: member.end });
  const entries: AttachmentEntry[] = [];
  for (const entry of object.members) {
    if (kindAt(scanned.bytes, entry.valueStart) !== 'object') continue;
    const props = decodeMember(object, entry) as Record<string, unknown>;
    let kind: AttachmentKind = 'inline';
    if (props.stub === true) kind = 'stub';
    else if (props.follows === true) kind = 'follows';
    entries.push({
      name: entry.key,
      kind,
      contentType: optionalString(props.content_type),
      digest: optionalString(props.digest),
      length: optionalNumber(props.length),
      revpos: optionalNumber(props.revpos),
      encoding: optionalString(props.encoding),
      data: kind === 'inline' ? optionalString(props.data) : null,
    });
  }
  return { raw: memberValueBytes(scanned, member), entries };
}

/**
 * Checks the history of a `new_edits=false` document of the given kind before it is merged.
 * Raises CouchDB's `bad_request` when it names no revision; Divan also rejects an empty
 * `_revisions.ids`, which CouchDB cannot store either. A normal or design document whose
 * revision is at position 0 gets `Invalid rev format`, because a revision tree starts at 1.
 * CouchDB stores such a revision; only `_local/` documents use position 0.
 */
export function requireReplicatedRevisions(revisions: RevPath, kind: DocKind): void {
  if (revisions.ids.length === 0) throw errors.replicatedDocWithoutRev();
  if (kind !== 'local' && revisions.start < 1) throw errors.invalidRev();
}
