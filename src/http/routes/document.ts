/**
 * Single-document routes: `POST /{db}`, and `GET`, `HEAD`, `PUT`, `DELETE` and `COPY` of
 * `/{db}/{id}`, `/{db}/_design/{name}` and `/{db}/_local/{name}`.
 *
 * As in CouchDB 3.x:
 * - the URL's id wins over a body's `_id`. `?rev=` (or `If-Match`) supplies the revision when
 *   the body has none, and a body revision that differs from it is a 400;
 * - replies to writes carry `ETag: "<rev>"` and a `Location` (except `DELETE` and `POST`,
 *   which send only one of them as CouchDB does); `GET` carries the ETag and answers 304 to a
 *   matching `If-None-Match`;
 * - `batch=ok` answers 202 before the write is applied; the write still happens, and a
 *   failure is only logged.
 * - a `PUT` body may be `multipart/related`: the document, then the bodies of the attachments
 *   it marks `follows` (multipart-docs.ts);
 * - `GET` with `attachments=true` answers `multipart/related` to a client that accepts it,
 *   and `open_revs` answers `multipart/mixed` to a client that accepts it, with every
 *   attachment's data (after `atts_since`) as parts;
 * - `COPY` copies the attachments' stored bytes into the new document.
 */
import { parseDigest, type WriteAttachment } from '../../document/attachments.js';
import { NO_REVISIONS, parseRev, type RevPath } from '../../document/rev.js';
import { errors } from '../../util/couch-error.js';
import type { LeafContent, WriteDocument } from '../backend.js';
import type { RequestScope } from '../context.js';
import {
  openRevsJson,
  PLAIN_READ,
  type ReadOptions,
  readDocument,
  readOpenRevs,
  readOptionsFromQuery,
  renderLocalDocument,
} from '../document-read.js';
import { MultipartWriter, mediaType } from '../multipart.js';
import {
  acceptsExactly,
  addErrorPart,
  addRevisionPart,
  followedBodies,
  MULTIPART_MIXED,
  MULTIPART_RELATED,
  parseRelatedRequest,
  relatedBody,
  sendMultipart,
} from '../multipart-docs.js';
import { encodeDocIdForUrl, percentDecode } from '../request-target.js';
import { parseWithLimits, validateUrlDocId, withId, writeError } from '../write.js';
import { withSnapshot } from './database.js';
import { newUuid } from './server.js';

const EMPTY_OBJECT = Buffer.from('{}');

function etag(rev: string): string {
  return `"${rev}"`;
}

function location(scope: RequestScope, db: string, id: string): string {
  return `${scope.origin()}/${encodeURIComponent(db)}/${encodeDocIdForUrl(id)}`;
}

/** Returns the revision `?rev=` names, or else the one in the `If-Match` header. */
export function requestedRev(scope: RequestScope): string | undefined {
  const fromQuery = scope.query.string('rev');
  if (fromQuery !== undefined) return fromQuery;
  const ifMatch = scope.header('if-match');
  return ifMatch === undefined ? undefined : ifMatch.replace(/^"|"$/g, '');
}

/** Writes one document and returns its new revision; raises the CouchDB error on failure. */
export async function writeOne(
  scope: RequestScope,
  db: string,
  doc: WriteDocument,
  newEdits: boolean,
): Promise<string> {
  const [result] = await scope.backend.write(db, { docs: [doc], newEdits });
  if (result === undefined) throw new Error(`the backend returned no result for ${doc.id}`);
  if (!result.ok) throw writeError(result);
  return result.rev;
}

/** Starts a `batch=ok` write without waiting for it and replies 202. */
function writeBatched(scope: RequestScope, db: string, doc: WriteDocument): void {
  scope.backend.write(db, { docs: [doc], newEdits: true }).then(
    (results) => {
      const result = results[0];
      if (result !== undefined && !result.ok) {
        scope.request.log.info({ db, id: doc.id, error: result.error }, 'batch=ok write failed');
      }
    },
    (error: unknown) =>
      scope.request.log.warn({ db, id: doc.id, err: error }, 'batch=ok write failed'),
  );
  scope.sendJson(202, { ok: true, id: doc.id });
}

export async function handlePostDocument(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const parsed = parseWithLimits(scope.body(), scope.limits);
  const generated = parsed.id === null;
  const doc = withId(
    generated ? { ...parsed, revisions: NO_REVISIONS } : parsed,
    parsed.id ?? newUuid(),
    true,
    scope.server.attachmentCompression,
  );
  if (scope.query.string('batch') === 'ok') {
    writeBatched(scope, db, doc);
    return;
  }
  const rev = await writeOne(scope, db, doc, true);
  scope.sendJson(201, { ok: true, id: doc.id, rev }, { location: location(scope, db, doc.id) });
}

export async function handleGetDocument(
  scope: RequestScope,
  db: string,
  id: string,
): Promise<void> {
  if (id.startsWith('_local/')) {
    const local = await withSnapshot(scope, db, (snapshot) => snapshot.localDocument(id));
    if (local === null) throw errors.docNotFound('missing');
    scope.sendJsonBytes(200, renderLocalDocument(local), { etag: etag(local.rev) });
    return;
  }
  const query = readOptionsFromQuery(scope.query);
  const latest = scope.query.boolean('latest', false);
  const openRevsText = scope.query.string('open_revs');
  if (openRevsText !== undefined) {
    const revs = openRevsText === 'all' ? 'all' : openRevsList(scope);
    const multipart = acceptsExactly(scope, MULTIPART_MIXED);
    const options = multipart ? multipartOptions(query) : query;
    // Attachment bytes are read while the snapshot is open, so the multipart body is built
    // inside it.
    const reply = await withSnapshot(scope, db, (snapshot) => {
      const entries = readOpenRevs(snapshot.document(id), revs, latest, options);
      if (!multipart) return { json: openRevsJson(entries) };
      const writer = new MultipartWriter();
      for (const entry of entries) {
        if (entry.kind === 'ok') addRevisionPart(writer, entry.rendered);
        else addErrorPart(writer, JSON.stringify({ missing: entry.rev }));
      }
      return { multipart: { type: writer.contentType('mixed'), body: writer.finish() } };
    });
    if (reply.json !== undefined) scope.sendJsonBytes(200, reply.json);
    else sendMultipart(scope, 200, reply.multipart.type, reply.multipart.body);
    return;
  }
  const multipart = query.attachments.attachments && acceptsExactly(scope, MULTIPART_RELATED);
  const options = multipart ? multipartOptions(query) : query;
  const { rendered, related } = await withSnapshot(scope, db, (snapshot) => {
    const revision = readDocument(
      snapshot.document(id),
      scope.query.string('rev'),
      latest,
      options,
    );
    const follows = multipart && revision.followed.length > 0;
    return { rendered: revision, related: follows ? relatedBody(revision) : null };
  });
  const tag = etag(`${rendered.rev.pos}-${rendered.rev.id}`);
  if (scope.header('if-none-match') === tag) {
    scope.reply.code(304).header('etag', tag).send();
    return;
  }
  if (related !== null) {
    sendMultipart(scope, 200, related.contentType, related.body, { etag: tag });
    return;
  }
  scope.sendJsonBytes(200, rendered.bytes, { etag: tag });
}

/**
 * The read options of a multipart reply: every attachment's data after `atts_since` follows,
 * as stored, with its encoding shown, as CouchDB sends multipart documents.
 */
export function multipartOptions(options: ReadOptions): ReadOptions {
  return {
    ...options,
    attachments: { ...options.attachments, attachments: true, encodingInfo: true, follows: true },
  };
}

function openRevsList(scope: RequestScope): string[] {
  const revs = scope.query.jsonArray('open_revs')!;
  return revs.map((rev) => {
    if (typeof rev.value !== 'string') throw errors.invalidRev();
    return rev.value;
  });
}

/** Merges the body's revision with `?rev=`; they must agree when both are given. */
function mergeRevisions(body: RevPath, fromRequest: string | undefined): RevPath {
  if (fromRequest === undefined) return body;
  const rev = parseRev(fromRequest);
  if (body.ids.length === 0) return { start: rev.pos, ids: [rev.id] };
  if (body.start !== rev.pos || body.ids[0] !== rev.id) {
    throw errors.badRequest(
      'Document rev from request body and query string have different values',
    );
  }
  return body;
}

export async function handlePutDocument(
  scope: RequestScope,
  db: string,
  idBytes: Buffer,
): Promise<void> {
  const id = validateUrlDocId(idBytes, scope.limits);
  const contentType = scope.header('content-type');
  let json = scope.body();
  let followed: Map<string, Buffer> | undefined;
  const related =
    mediaType(contentType) === MULTIPART_RELATED
      ? parseRelatedRequest(scope.body(), contentType!)
      : null;
  if (related !== null) json = related.json;
  const parsed = parseWithLimits(json, scope.limits, id);
  if (related !== null) followed = followedBodies(parsed.attachments?.entries ?? [], related.parts);
  const newEdits = scope.query.boolean('new_edits', true);
  const revisions = mergeRevisions(parsed.revisions, requestedRev(scope));
  const doc = withId({ ...parsed, revisions }, id, newEdits, {
    ...scope.server.attachmentCompression,
    followed,
  });
  if (newEdits && scope.query.string('batch') === 'ok') {
    writeBatched(scope, db, doc);
    return;
  }
  const rev = await writeOne(scope, db, doc, newEdits);
  scope.sendJson(
    201,
    { ok: true, id, rev },
    { etag: etag(rev), location: location(scope, db, id) },
  );
}

export async function handleDeleteDocument(
  scope: RequestScope,
  db: string,
  idBytes: Buffer,
): Promise<void> {
  const id = validateUrlDocId(idBytes, scope.limits);
  const revText = requestedRev(scope);
  if (revText === undefined) throw errors.conflict();
  const rev = parseRev(revText);
  const doc = withId(
    {
      id,
      kind: null,
      revisions: { start: rev.pos, ids: [rev.id] },
      deleted: true,
      attachments: null,
      body: EMPTY_OBJECT,
    },
    id,
    true,
  );
  const newRev = await writeOne(scope, db, doc, true);
  scope.sendJson(200, { ok: true, id, rev: newRev }, { etag: etag(newRev) });
}

/**
 * The attachments of a copied revision, with their stored bytes: the copy is another document,
 * so its attachments cannot be stubs of the source's revisions.
 */
function copiedAttachments(content: LeafContent): WriteAttachment[] | null {
  if (content.attachments.length === 0) return null;
  return content.attachments.map((attachment) => ({
    kind: 'data',
    name: attachment.name,
    contentType: attachment.contentType,
    encoding: attachment.encoding,
    revpos: null,
    length: attachment.length,
    digest: parseDigest(attachment.digest)!,
    data: attachment.read(0, attachment.encodedLength),
  }));
}

/** Splits a COPY `Destination` header: `id` or `id?rev=N-x`, percent-encoded. */
function parseDestination(header: string | undefined): { id: Buffer; rev: string | undefined } {
  if (header === undefined || header === '') {
    throw errors.badRequest('Destination header is mandatory for COPY.');
  }
  const question = header.indexOf('?');
  const idPart = question < 0 ? header : header.slice(0, question);
  const rev =
    question < 0
      ? undefined
      : (new URLSearchParams(header.slice(question + 1)).get('rev') ?? undefined);
  return { id: percentDecode(idPart), rev };
}

export async function handleCopyDocument(
  scope: RequestScope,
  db: string,
  id: string,
): Promise<void> {
  const destination = parseDestination(scope.header('destination'));
  const targetId = validateUrlDocId(destination.id, scope.limits);
  const source = await withSnapshot(scope, db, (snapshot) => {
    const record = snapshot.document(id);
    const rendered = readDocument(record, scope.query.string('rev'), false, PLAIN_READ);
    const content = record!.content(rendered.rev)!;
    return { body: content.body, attachments: copiedAttachments(content) };
  });
  const targetRev = destination.rev === undefined ? undefined : parseRev(destination.rev);
  const doc: WriteDocument = {
    ...withId(
      {
        id: targetId,
        kind: null,
        revisions:
          targetRev === undefined ? NO_REVISIONS : { start: targetRev.pos, ids: [targetRev.id] },
        deleted: false,
        attachments: null,
        body: source.body,
      },
      targetId,
      true,
    ),
    attachments: source.attachments,
  };
  const rev = await writeOne(scope, db, doc, true);
  scope.sendJson(
    201,
    { ok: true, id: targetId, rev },
    { etag: etag(rev), location: location(scope, db, targetId) },
  );
}
