/**
 * Documents in multipart bodies, in CouchDB 3.x's layout:
 *
 * - a document with attachments that follow is `multipart/related`: a JSON part (its
 *   `_attachments` marked `follows`), then one part per attachment with `Content-Disposition:
 *   attachment; filename="<name>"`, its `Content-Type`, `Content-Length` and, for gzip,
 *   `Content-Encoding`; the bytes are sent as stored;
 * - `open_revs` and `_bulk_get` answer `multipart/mixed`: one part per revision, either
 *   `application/json` (no attachment follows) or a nested `multipart/related`; a missing
 *   revision or an error is an `application/json; error="true"` part;
 * - a document PUT as `multipart/related` takes its `follows` attachments from the parts after
 *   the JSON, by `Content-Disposition` file name when every part names one, else in order.
 *
 * Multipart replies are sent only when the request's `Accept` header names the multipart type;
 * `*` wildcards get JSON.
 */
import { followedNames } from '../document/attachments.js';
import type { AttachmentEntry } from '../document/document.js';
import { errors } from '../util/couch-error.js';
import type { StoredAttachment } from './backend.js';
import type { RequestScope } from './context.js';
import type { RenderedRevision } from './document-read.js';
import {
  headerParameter,
  type MultipartPart,
  MultipartWriter,
  mediaType,
  parseMultipart,
  quotedFilename,
} from './multipart.js';

export const MULTIPART_RELATED = 'multipart/related';
export const MULTIPART_MIXED = 'multipart/mixed';

/** True when the `Accept` header names `type` itself (not through a wildcard). */
export function acceptsExactly(scope: RequestScope, type: string): boolean {
  const header = scope.header('accept');
  if (header === undefined) return false;
  return header.split(',').some((item) => mediaType(item) === type);
}

function attachmentPartHeaders(attachment: StoredAttachment): Array<[string, string]> {
  const headers: Array<[string, string]> = [
    ['Content-Disposition', `attachment; filename=${quotedFilename(attachment.name)}`],
    ['Content-Type', attachment.contentType],
    ['Content-Length', String(attachment.encodedLength)],
  ];
  if (attachment.encoding !== 'identity') headers.push(['Content-Encoding', attachment.encoding]);
  return headers;
}

/** A document and the attachments that follow it, as one `multipart/related` body. */
export function relatedBody(rendered: RenderedRevision): { contentType: string; body: Buffer } {
  const writer = new MultipartWriter();
  writer.part([['Content-Type', 'application/json']], rendered.bytes);
  for (const attachment of rendered.followed) {
    writer.part(attachmentPartHeaders(attachment), attachment.read(0, attachment.encodedLength));
  }
  return { contentType: writer.contentType('related'), body: writer.finish() };
}

/** Adds one revision to a `multipart/mixed` body, nested as `related` when attachments follow. */
export function addRevisionPart(
  writer: MultipartWriter,
  rendered: RenderedRevision,
  extraHeaders: Array<[string, string]> = [],
): void {
  if (rendered.followed.length === 0) {
    writer.part([['Content-Type', 'application/json'], ...extraHeaders], rendered.bytes);
    return;
  }
  const related = relatedBody(rendered);
  writer.part([['Content-Type', related.contentType], ...extraHeaders], related.body);
}

/** Adds an error part (`{"missing": rev}`, a `_bulk_get` error) to a `multipart/mixed` body. */
export function addErrorPart(
  writer: MultipartWriter,
  json: string,
  extraHeaders: Array<[string, string]> = [],
): void {
  writer.part([['Content-Type', 'application/json; error="true"'], ...extraHeaders], json);
}

/** Sends a finished multipart body. */
export function sendMultipart(
  scope: RequestScope,
  status: number,
  contentType: string,
  body: Buffer,
  headers: Readonly<Record<string, string>> = {},
): void {
  scope.reply.code(status).headers(headers).header('content-type', contentType).send(body);
}

/** The JSON part and the attachment bodies of a `multipart/related` document request. */
export interface RelatedRequest {
  readonly json: Buffer;
  /** Parts after the JSON, in order. */
  readonly parts: readonly MultipartPart[];
}

/** Splits a `multipart/related` request body; the first part must be the JSON document. */
export function parseRelatedRequest(body: Buffer, contentType: string): RelatedRequest {
  const parts = parseMultipart(body, contentType);
  const first = parts[0];
  if (first === undefined) throw errors.badRequest('The multipart body has no document part.');
  const type = first.headers.get('content-type');
  if (type !== undefined && mediaType(type) !== 'application/json') {
    throw errors.badRequest('The first part of a multipart document must be application/json.');
  }
  return { json: first.body, parts: parts.slice(1) };
}

function partFilename(part: MultipartPart): string | null {
  const disposition = part.headers.get('content-disposition');
  return disposition === undefined ? null : headerParameter(disposition, 'filename');
}

/** Matches the parts to the document's `follows` attachments; 400 when they do not match. */
export function followedBodies(
  entries: readonly AttachmentEntry[],
  parts: readonly MultipartPart[],
): Map<string, Buffer> {
  const names = followedNames(entries);
  if (names.length !== parts.length) {
    throw errors.badRequest(
      `The document names ${names.length} attachments that follow, and the request has ${parts.length} attachment parts.`,
    );
  }
  const bodies = new Map<string, Buffer>();
  const filenames = parts.map(partFilename);
  const byName = filenames.every((filename) => filename !== null);
  parts.forEach((part, i) => {
    const name = byName ? filenames[i]! : names[i]!;
    if (!names.includes(name)) {
      throw errors.badRequest(`The multipart part ${name} matches no attachment that follows.`);
    }
    bodies.set(name, part.body);
  });
  return bodies;
}
