/**
 * Attachments as CouchDB 3.x handles them (couch_att), as pure functions: turning the entries of
 * a document's `_attachments` into what a write stores, and turning stored attachments back
 * into the `_attachments` JSON a reader gets.
 *
 * A write carries each attachment either as a stub (keep the attachment of that name from the
 * revision the edit extends) or with its data. Data arrives base64 inline, as a part of a
 * `multipart/related` request (`follows`), or as the body of a standalone attachment PUT.
 * `prepareAttachments` decodes it once, on the node that took the request, so every replica
 * stores the same bytes:
 * - identity data of a compressible type (CouchDB's `compressible_types`) is stored gzipped,
 *   as CouchDB's default `compression_level` 8 does; data the client sent gzipped stays so;
 * - the digest is `md5-` and the base64 MD5 of the stored bytes, as CouchDB computes it, and a
 *   digest the client sent with `follows` data must match the bytes received
 *   (400 `content_md5_mismatch`), while inline data ignores it, as CouchDB does;
 * - names starting with `_` are rejected (400), and invalid base64 is a 400 naming the
 *   attachment.
 *
 * Rendering follows couch_att:to_json: `content_type`, `revpos`, `digest`, then `length` and
 * `stub` (or `follows`, or the base64 `data` of the decoded bytes), then `encoding` and
 * `encoded_length` only when the reader asked for encoding information.
 *
 * What this module does not do: resolve stubs against a stored revision (the store does, with
 * `stubMatches`), store bytes, or parse multipart bodies.
 */
import { createHash } from 'node:crypto';
import { constants, gunzipSync, gzipSync } from 'node:zlib';
import { CouchError, errors } from '../util/couch-error.js';
import type { AttachmentEntry } from './document.js';
import type { Rev, RevPath } from './rev.js';

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
export const DIGEST_PREFIX = 'md5-';
export const MD5_BYTES = 16;
/** CouchDB 3.x's default `compressible_types`. */
export const DEFAULT_COMPRESSIBLE_TYPES: readonly string[] = Object.freeze([
  'text/*',
  'application/javascript',
  'application/json',
  'application/xml',
]);
/** CouchDB 3.x's default attachment `compression_level` (0 stores everything as sent). */
export const DEFAULT_COMPRESSION_LEVEL = 8;
const MAX_COMPRESSION_LEVEL = constants.Z_BEST_COMPRESSION;

export type AttachmentEncoding = 'identity' | 'gzip';

/** Keep the attachment of this name from the revision the edit extends. */
export interface StubAttachment {
  readonly kind: 'stub';
  readonly name: string;
  /** The `revpos` the client named; when given it must match the stored attachment's. */
  readonly revpos: number | null;
}

/** An attachment whose bytes the write carries. */
export interface DataAttachment {
  readonly kind: 'data';
  readonly name: string;
  readonly contentType: string;
  /** How `data` is encoded. */
  readonly encoding: AttachmentEncoding;
  /** The `revpos` a replicated document named; interactive edits use the new revision's. */
  readonly revpos: number | null;
  /** Length of the decoded (identity) bytes. */
  readonly length: number;
  /** MD5 of `data`. */
  readonly digest: Buffer;
  /** The bytes to store. */
  readonly data: Buffer;
}

export type WriteAttachment = StubAttachment | DataAttachment;

/** The facts of a stored attachment that a reader sees. */
export interface AttachmentMeta {
  readonly name: string;
  readonly contentType: string;
  readonly revpos: number;
  /** `md5-<base64>` of the stored bytes. */
  readonly digest: string;
  /** Length of the decoded bytes. */
  readonly length: number;
  readonly encoding: AttachmentEncoding;
  /** Length of the stored bytes. */
  readonly encodedLength: number;
}

export interface CompressionOptions {
  /** Content types stored gzipped; `type/*` matches a whole type. */
  readonly compressibleTypes?: readonly string[];
  /** zlib level 1 to 9, or 0 to store every attachment as sent. */
  readonly compressionLevel?: number;
}

export interface PrepareOptions extends CompressionOptions {
  /** The bodies of `follows` attachments (multipart parts), by attachment name. */
  readonly followed?: ReadonlyMap<string, Buffer>;
}

/** Raises CouchDB's 400 for a name a client may not use; returns the name. */
export function validateAttachmentName(name: string): string {
  if (name.startsWith('_')) {
    throw errors.badRequest(`Attachment name '${name}' starts with prohibited character '_'`);
  }
  return name;
}

export function formatDigest(md5: Uint8Array): string {
  return `${DIGEST_PREFIX}${Buffer.from(md5).toString('base64')}`;
}

/** Returns the MD5 an `md5-<base64>` digest names, or null for another form. */
export function parseDigest(text: string | null): Buffer | null {
  if (text === null || !text.startsWith(DIGEST_PREFIX)) return null;
  const bytes = decodeBase64(text.slice(DIGEST_PREFIX.length));
  return bytes !== null && bytes.length === MD5_BYTES ? bytes : null;
}

export function md5(bytes: Uint8Array): Buffer {
  return createHash('md5').update(bytes).digest();
}

const BASE64_BODY = /^[A-Za-z0-9+/]*$/;
const BASE64_GROUP = 4;

/** Decodes strict base64 (standard alphabet, padding optional); null when it is not base64. */
export function decodeBase64(text: string): Buffer | null {
  const unpadded = text.endsWith('==')
    ? text.slice(0, -2)
    : text.endsWith('=')
      ? text.slice(0, -1)
      : text;
  if (!BASE64_BODY.test(unpadded)) return null;
  const remainder = unpadded.length % BASE64_GROUP;
  if (remainder === 1) return null;
  if (unpadded.length !== text.length && text.length % BASE64_GROUP !== 0) return null;
  return Buffer.from(unpadded, 'base64');
}

/** True when CouchDB would store identity data of this content type gzipped. */
export function isCompressible(contentType: string, types: readonly string[]): boolean {
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return types.some((pattern) => {
    const wanted = pattern.trim().toLowerCase();
    if (wanted.endsWith('/*')) return type.startsWith(wanted.slice(0, -1));
    return type === wanted;
  });
}

function compressionLevel(options: CompressionOptions): number {
  const level = options.compressionLevel ?? DEFAULT_COMPRESSION_LEVEL;
  if (!Number.isInteger(level) || level < 0 || level > MAX_COMPRESSION_LEVEL) {
    throw new RangeError(`attachment compression level ${level} is not between 0 and 9`);
  }
  return level;
}

/** Returns the identity length of gzipped bytes; 400 when they are not gzip. */
function gunzippedLength(name: string, bytes: Buffer): number {
  try {
    return gunzipSync(bytes).length;
  } catch {
    throw errors.badRequest(`Attachment ${name} is not valid gzip data.`);
  }
}

/**
 * Builds a data attachment from the bytes a client sent: gzips identity bytes of a
 * compressible type, and checks `expectedMd5` (of the bytes as sent) when given.
 */
export function dataAttachment(
  input: {
    readonly name: string;
    readonly contentType: string | null;
    readonly bytes: Buffer;
    readonly encoding: AttachmentEncoding;
    readonly revpos: number | null;
    readonly expectedMd5?: Buffer | null;
  },
  options: CompressionOptions = {},
): DataAttachment {
  const name = validateAttachmentName(input.name);
  const contentType = input.contentType ?? DEFAULT_CONTENT_TYPE;
  const expected = input.expectedMd5 ?? null;
  if (expected !== null && !md5(input.bytes).equals(expected)) {
    throw new CouchError(400, 'content_md5_mismatch', 'Possible message corruption.');
  }
  let data = input.bytes;
  let encoding = input.encoding;
  let length = data.length;
  if (encoding === 'gzip') {
    length = gunzippedLength(name, data);
  } else {
    const level = compressionLevel(options);
    const types = options.compressibleTypes ?? DEFAULT_COMPRESSIBLE_TYPES;
    if (level > 0 && isCompressible(contentType, types)) {
      data = gzipSync(data, { level });
      encoding = 'gzip';
    }
  }
  return {
    kind: 'data',
    name,
    contentType,
    encoding,
    revpos: input.revpos,
    length,
    digest: md5(data),
    data,
  };
}

function entryEncoding(entry: AttachmentEntry): AttachmentEncoding {
  if (entry.encoding === null || entry.encoding === 'identity') return 'identity';
  if (entry.encoding === 'gzip') return 'gzip';
  throw errors.badRequest(`Attachment ${entry.name} has unsupported encoding ${entry.encoding}.`);
}

function prepareEntry(entry: AttachmentEntry, options: PrepareOptions): WriteAttachment {
  validateAttachmentName(entry.name);
  switch (entry.kind) {
    case 'stub':
      return { kind: 'stub', name: entry.name, revpos: entry.revpos };
    case 'inline': {
      const bytes = entry.data === null ? null : decodeBase64(entry.data);
      if (bytes === null) throw errors.badRequest(`Invalid attachment data for ${entry.name}`);
      const revpos = entry.revpos;
      return dataAttachment(
        { name: entry.name, contentType: entry.contentType, bytes, encoding: 'identity', revpos },
        options,
      );
    }
    case 'follows': {
      const bytes = options.followed?.get(entry.name);
      if (bytes === undefined) {
        throw errors.badRequest(`The request has no body for attachment ${entry.name}.`);
      }
      return dataAttachment(
        {
          name: entry.name,
          contentType: entry.contentType,
          bytes,
          encoding: entryEncoding(entry),
          revpos: entry.revpos,
          expectedMd5: parseDigest(entry.digest),
        },
        options,
      );
    }
  }
}

/**
 * Turns the recognised `_attachments` entries of a parsed document into what the write stores,
 * in order. A name given twice keeps the later entry at the earlier one's place. Raises
 * CouchDB's 400s for bad names, invalid base64 and missing multipart bodies.
 */
export function prepareAttachments(
  entries: readonly AttachmentEntry[],
  options: PrepareOptions = {},
): WriteAttachment[] {
  const byName = new Map<string, WriteAttachment>();
  for (const entry of entries) byName.set(entry.name, prepareEntry(entry, options));
  return [...byName.values()];
}

/** Returns the names of the `follows` entries, in order (the multipart parts they expect). */
export function followedNames(entries: readonly AttachmentEntry[]): string[] {
  return entries.filter((entry) => entry.kind === 'follows').map((entry) => entry.name);
}

/** True when a stub names `stored`: same name, and the same `revpos` when the stub gives one. */
export function stubMatches(stub: StubAttachment, stored: AttachmentMeta): boolean {
  return stub.name === stored.name && (stub.revpos === null || stub.revpos === stored.revpos);
}

/** CouchDB's 412 for a stub that names no attachment of the revision the edit extends. */
export function missingStub(docId: string, name: string): CouchError {
  return errors.missingStub(`Invalid attachment stub in ${docId} for ${name}`);
}

/**
 * `atts_since`: the highest position of the opened revision's history that the reader already
 * has. Attachments added after it are sent with their data, the others as stubs.
 */
export function attachmentsSincePos(history: RevPath, known: readonly Rev[]): number {
  for (let i = 0; i < history.ids.length; i++) {
    const pos = history.start - i;
    const id = history.ids[i]!;
    if (known.some((rev) => rev.pos === pos && rev.id === id)) return pos;
  }
  return 0;
}

/** How one attachment appears in a rendered document. */
export type AttachmentForm = 'stub' | 'data' | 'follows';

export interface RenderAttachmentsOptions {
  /** The form of each attachment. */
  readonly formOf: (attachment: AttachmentMeta) => AttachmentForm;
  /** Adds `encoding` and `encoded_length` to gzipped attachments (`att_encoding_info`). */
  readonly showEncoding: boolean;
  /** The decoded bytes of an attachment rendered as `data`. */
  readonly decodedData: (attachment: AttachmentMeta) => Buffer;
}

/** Renders an `_attachments` object as JSON text, in the order CouchDB writes its members. */
export function renderAttachments(
  attachments: readonly AttachmentMeta[],
  options: RenderAttachmentsOptions,
): string {
  const members = attachments.map((attachment) => {
    const fields: Record<string, unknown> = {
      content_type: attachment.contentType,
      revpos: attachment.revpos,
      digest: attachment.digest,
    };
    const form = options.formOf(attachment);
    if (form === 'data') {
      fields.data = options.decodedData(attachment).toString('base64');
    } else {
      fields.length = attachment.length;
      fields[form] = true;
    }
    if (options.showEncoding && attachment.encoding !== 'identity') {
      fields.encoding = attachment.encoding;
      fields.encoded_length = attachment.encodedLength;
    }
    return `${JSON.stringify(attachment.name)}:${JSON.stringify(fields)}`;
  });
  return `{${members.join(',')}}`;
}

/** Decodes stored bytes to identity bytes. */
export function decodeStored(encoding: AttachmentEncoding, stored: Buffer): Buffer {
  return encoding === 'gzip' ? gunzipSync(stored) : stored;
}

/** What a read asks of a revision's attachments. */
export interface AttachmentReadOptions {
  /** `attachments=true`: send the data of each attachment newer than `attsSince`. */
  readonly attachments: boolean;
  /** `atts_since`: revisions the reader has; attachments up to the newest of them are stubs. */
  readonly attsSince: readonly Rev[] | null;
  /** `att_encoding_info=true`: show `encoding` and `encoded_length`. */
  readonly encodingInfo: boolean;
  /** Multipart replies: attachments with data are marked `follows` and sent as parts. */
  readonly follows: boolean;
}

export const STUBS_ONLY: AttachmentReadOptions = Object.freeze({
  attachments: false,
  attsSince: null,
  encodingInfo: false,
  follows: false,
});

/**
 * Renders a revision's `_attachments` for a read and returns the attachments whose data
 * follows as multipart parts. `history` is the revision's path, needed for `attsSince`;
 * `readStored` reads an attachment's stored bytes.
 */
export function renderRevisionAttachments<A extends AttachmentMeta>(
  attachments: readonly A[],
  history: RevPath | null,
  options: AttachmentReadOptions,
  readStored: (attachment: A) => Buffer,
): { json: string; followed: A[] } {
  const sincePos =
    options.attsSince === null || history === null
      ? 0
      : attachmentsSincePos(history, options.attsSince);
  const followed: A[] = [];
  const formOf = (attachment: AttachmentMeta): AttachmentForm => {
    if (!options.attachments || attachment.revpos <= sincePos) return 'stub';
    if (!options.follows) return 'data';
    followed.push(attachment as A);
    return 'follows';
  };
  const json = renderAttachments(attachments, {
    formOf,
    showEncoding: options.encodingInfo,
    decodedData: (attachment) => decodeStored(attachment.encoding, readStored(attachment as A)),
  });
  return { json, followed };
}
