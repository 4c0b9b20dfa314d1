/**
 * Standalone attachment routes: `GET`, `HEAD`, `PUT` and `DELETE` of `/{db}/{id}/{name}`
 * (and `/{db}/_design/{ddoc}/{name}`), as CouchDB 3.x serves them. A name may contain `/`: the
 * rest of the path is the name.
 *
 * - `GET` sends the stored bytes with their `Content-Type`, an `ETag` of the attachment's
 *   MD5 (304 on a matching `If-None-Match`), gzip stored bytes as they are to a client that
 *   accepts gzip (`Content-Encoding: gzip`) and decoded to others. A `Range` on an attachment
 *   stored as identity gets 206 with one range or `multipart/byteranges` with several; a range
 *   past the end is 416. `?rev=` reads another leaf.
 * - `PUT` writes a new revision: the revision's body and other attachments (as stubs), with
 *   this attachment first, as CouchDB orders them. Without `?rev=` (or `If-Match`) it creates
 *   the document, or conflicts when a live document exists. `Content-Encoding: gzip` stores the
 *   bytes as sent, `Content-MD5` is checked.
 * - `DELETE` writes a revision without the attachment; it needs the revision (409 without),
 *   and a missing attachment is 404 `Document is missing attachment`.
 *
 * `_local/` documents have no attachments (400).
 */
import {
  DEFAULT_CONTENT_TYPE,
  DIGEST_PREFIX,
  dataAttachment,
  decodeBase64,
  decodeStored,
  MD5_BYTES,
  validateAttachmentName,
  type WriteAttachment,
} from '../../document/attachments.js';
import { NO_REVISIONS, parseRev, type Rev } from '../../document/rev.js';
import { CouchError, errors } from '../../util/couch-error.js';
import type { DocumentRecord, LeafContent, StoredAttachment, WriteDocument } from '../backend.js';
import type { RequestScope } from '../context.js';
import { MultipartWriter } from '../multipart.js';
import { encodeDocIdForUrl, type PathSegment } from '../request-target.js';
import { validateUrlDocId, withId } from '../write.js';
import { withSnapshot } from './database.js';
import { requestedRev, writeOne } from './document.js';

const MISSING_ATTACHMENT = 'Document is missing attachment';
const EMPTY_BODY = Buffer.from('{}');
/** CouchDB answers ranges with 206 only up to this many ranges. */
const MAX_RANGES = 10;

/** Joins the segments after the document id into an attachment name. */
export function attachmentName(segments: readonly PathSegment[]): string {
  const bytes = Buffer.concat(
    segments.flatMap((segment, i) =>
      i === 0 ? [segment.bytes] : [Buffer.from('/'), segment.bytes],
    ),
  );
  const name = bytes.toString('utf8');
  if (!Buffer.from(name, 'utf8').equals(bytes)) {
    throw errors.badRequest('Attachment name is not UTF-8 encoded');
  }
  return validateAttachmentName(name);
}

function rejectLocal(id: string): void {
  if (id.startsWith('_local/')) throw errors.badRequest('Local documents have no attachments.');
}

function rangeNotSatisfiable(): CouchError {
  return new CouchError(416, 'requested_range_not_satisfiable', 'Requested range not satisfiable');
}

/** A byte range, both ends included. */
interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * Parses a `Range: bytes=...` header for a body of `length` bytes. Returns null to send the
 * whole body (no header, a malformed one, or one range covering everything), and raises 416
 * when a range is unsatisfiable.
 */
export function parseRanges(header: string | undefined, length: number): ByteRange[] | null {
  if (header === undefined) return null;
  const match = /^bytes=(.+)$/i.exec(header.trim());
  if (match === null) return null;
  const ranges: ByteRange[] = [];
  for (const item of match[1]!.split(',')) {
    const parts = /^\s*(\d*)-(\d*)\s*$/.exec(item);
    if (parts === null || (parts[1] === '' && parts[2] === '')) return null;
    let start: number;
    let end: number;
    if (parts[1] === '') {
      start = Math.max(0, length - Number(parts[2]));
      end = length - 1;
    } else {
      start = Number(parts[1]);
      end = parts[2] === '' ? length - 1 : Math.min(Number(parts[2]), length - 1);
      if (parts[2] !== '' && Number(parts[2]) < start) throw rangeNotSatisfiable();
    }
    if (start >= length || end < start) throw rangeNotSatisfiable();
    ranges.push({ start, end });
  }
  if (ranges.length === 1 && ranges[0]!.start === 0 && ranges[0]!.end === length - 1) return null;
  return ranges.length <= MAX_RANGES ? ranges : null;
}

function acceptsGzip(scope: RequestScope): boolean {
  const header = scope.header('accept-encoding') ?? '';
  return header.split(',').some((item) => {
    const [coding, ...params] = item.trim().toLowerCase().split(';');
    const zeroQuality = params.some((param) => /^\s*q=0(\.0*)?\s*$/.test(param));
    return coding === 'gzip' && !zeroQuality;
  });
}

/** The leaf a read or an edit of an attachment works on; raises CouchDB's 404s. */
function leafFor(
  record: DocumentRecord | null,
  revText: string | undefined,
): { rev: Rev; content: LeafContent } {
  if (record === null) throw errors.docNotFound('missing');
  if (revText === undefined && record.deleted) throw errors.docNotFound('deleted');
  const rev = revText === undefined ? record.winner : parseRev(revText);
  const content = record.content(rev);
  if (content === null) throw errors.docNotFound('missing');
  return { rev, content };
}

function findAttachment(content: LeafContent, name: string): StoredAttachment {
  const attachment = content.attachments.find((candidate) => candidate.name === name);
  if (attachment === undefined) throw errors.notFound(MISSING_ATTACHMENT);
  return attachment;
}

/** What a GET sends: the bytes, whether they are gzip, and the facts for the headers. */
interface AttachmentReply {
  readonly attachment: StoredAttachment;
  readonly bytes: Buffer;
  readonly gzip: boolean;
}

export async function handleGetAttachment(
  scope: RequestScope,
  db: string,
  id: string,
  name: string,
): Promise<void> {
  rejectLocal(id);
  const wantsGzip = acceptsGzip(scope);
  const reply = await withSnapshot(scope, db, (snapshot): AttachmentReply => {
    const { content } = leafFor(snapshot.document(id), scope.query.string('rev'));
    const attachment = findAttachment(content, name);
    const stored = attachment.read(0, attachment.encodedLength);
    const gzip = attachment.encoding === 'gzip' && wantsGzip;
    return { attachment, gzip, bytes: gzip ? stored : decodeStored(attachment.encoding, stored) };
  });
  const { attachment, bytes } = reply;
  const etag = `"${attachment.digest.slice(DIGEST_PREFIX.length)}"`;
  const headers: Record<string, string> = {
    etag,
    'cache-control': 'must-revalidate',
    'content-type': attachment.contentType,
    'accept-ranges': attachment.encoding === 'identity' ? 'bytes' : 'none',
  };
  if (reply.gzip) headers['content-encoding'] = 'gzip';
  if (scope.header('if-none-match') === etag) {
    scope.reply.code(304).headers(headers).send();
    return;
  }
  const ranges =
    attachment.encoding === 'identity' ? parseRanges(scope.header('range'), bytes.length) : null;
  if (ranges === null) {
    if (attachment.encoding === 'identity' || reply.gzip) {
      headers['content-md5'] = attachment.digest.slice(DIGEST_PREFIX.length);
    }
    scope.reply.code(200).headers(headers).send(bytes);
    return;
  }
  sendRanges(scope, headers, attachment.contentType, bytes, ranges);
}

function sendRanges(
  scope: RequestScope,
  headers: Record<string, string>,
  contentType: string,
  bytes: Buffer,
  ranges: readonly ByteRange[],
): void {
  const total = bytes.length;
  if (ranges.length === 1) {
    const { start, end } = ranges[0]!;
    headers['content-range'] = `bytes ${start}-${end}/${total}`;
    scope.reply
      .code(206)
      .headers(headers)
      .send(bytes.subarray(start, end + 1));
    return;
  }
  const writer = new MultipartWriter();
  for (const { start, end } of ranges) {
    writer.part(
      [
        ['Content-Type', contentType],
        ['Content-Range', `bytes ${start}-${end}/${total}`],
      ],
      bytes.subarray(start, end + 1),
    );
  }
  headers['content-type'] = writer.contentType('byteranges');
  scope.reply.code(206).headers(headers).send(writer.finish());
}

function attachmentLocation(scope: RequestScope, db: string, id: string, name: string): string {
  const encodedName = name.split('/').map(encodeURIComponent).join('/');
  return `${scope.origin()}/${encodeURIComponent(db)}/${encodeDocIdForUrl(id)}/${encodedName}`;
}

function stubsOf(content: LeafContent | null, except: string): WriteAttachment[] {
  return (content?.attachments ?? [])
    .filter((attachment) => attachment.name !== except)
    .map((attachment) => ({ kind: 'stub', name: attachment.name, revpos: attachment.revpos }));
}

/** Reads the leaf an attachment edit extends: at `revText`, or none for a new document. */
async function editBase(
  scope: RequestScope,
  db: string,
  id: string,
  revText: string | undefined,
): Promise<{ rev: Rev | null; content: LeafContent | null }> {
  return withSnapshot(scope, db, (snapshot) => {
    const record = snapshot.document(id);
    if (revText === undefined) {
      if (record !== null && !record.deleted) throw errors.conflict();
      return { rev: null, content: null };
    }
    const rev = parseRev(revText);
    const content = record?.content(rev) ?? null;
    if (content === null) throw errors.conflict();
    return { rev, content };
  });
}

function editedDocument(
  id: string,
  base: { rev: Rev | null; content: LeafContent | null },
  attachments: WriteAttachment[],
): WriteDocument {
  const doc = withId(
    {
      id,
      kind: null,
      revisions: base.rev === null ? NO_REVISIONS : { start: base.rev.pos, ids: [base.rev.id] },
      deleted: false,
      attachments: null,
      body: base.content === null || base.content.deleted ? EMPTY_BODY : base.content.body,
    },
    id,
    true,
  );
  return { ...doc, attachments };
}

function requestEncoding(scope: RequestScope): 'identity' | 'gzip' {
  const header = (scope.header('content-encoding') ?? 'identity').trim().toLowerCase();
  if (header === 'identity' || header === '') return 'identity';
  if (header === 'gzip') return 'gzip';
  throw new CouchError(415, 'bad_content_type', `Content-Encoding ${header} is not supported.`);
}

function requestMd5(scope: RequestScope): Buffer | null {
  const header = scope.header('content-md5');
  if (header === undefined) return null;
  const md5 = decodeBase64(header.trim());
  if (md5 === null || md5.length !== MD5_BYTES) {
    throw errors.badRequest('Content-MD5 is not a base64 MD5.');
  }
  return md5;
}

export async function handlePutAttachment(
  scope: RequestScope,
  db: string,
  idBytes: Buffer,
  name: string,
): Promise<void> {
  const id = validateUrlDocId(idBytes, scope.limits);
  rejectLocal(id);
  const attachment = dataAttachment(
    {
      name,
      contentType: scope.header('content-type') ?? DEFAULT_CONTENT_TYPE,
      bytes: scope.body(),
      encoding: requestEncoding(scope),
      revpos: null,
      expectedMd5: requestMd5(scope),
    },
    scope.server.attachmentCompression,
  );
  const base = await editBase(scope, db, id, requestedRev(scope));
  const doc = editedDocument(id, base, [attachment, ...stubsOf(base.content, name)]);
  const rev = await writeOne(scope, db, doc, true);
  scope.sendJson(
    201,
    { ok: true, id, rev },
    { etag: `"${rev}"`, location: attachmentLocation(scope, db, id, name) },
  );
}

export async function handleDeleteAttachment(
  scope: RequestScope,
  db: string,
  idBytes: Buffer,
  name: string,
): Promise<void> {
  const id = validateUrlDocId(idBytes, scope.limits);
  rejectLocal(id);
  const revText = requestedRev(scope);
  if (revText === undefined) throw errors.conflict();
  const base = await editBase(scope, db, id, revText);
  findAttachment(base.content!, name);
  const doc = editedDocument(id, base, stubsOf(base.content, name));
  const rev = await writeOne(scope, db, doc, true);
  scope.sendJson(200, { ok: true, id, rev }, { etag: `"${rev}"` });
}
