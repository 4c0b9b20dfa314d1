/**
 * The write side shared by document routes and `_bulk_docs`: parsing a document with the
 * server's limits, fixing its id, preparing its attachments (decoded, digested and compressed
 * once, here, so every replica stores the same bytes), and turning a per-document
 * `WriteResult` error into the CouchDB error of a single-document request.
 */
import { type PrepareOptions, prepareAttachments } from '../document/attachments.js';
import { docKind, validateDocId } from '../document/doc-id.js';
import {
  type DocumentWrite,
  type ParseDocumentOptions,
  parseDocument,
  requireReplicatedRevisions,
} from '../document/document.js';
import type { ScannedValue } from '../document/json.js';
import { CouchError, errors, isCouchError } from '../util/couch-error.js';
import type { WriteDocument, WriteResult } from './backend.js';
import type { HttpLimits } from './limits.js';

/** The HTTP status of a per-document error, as CouchDB maps its error names. */
const ERROR_STATUS: Readonly<Record<string, number>> = {
  conflict: 409,
  forbidden: 403,
  unauthorized: 401,
  not_found: 404,
  document_too_large: 413,
  missing_stub: 412,
};
const DEFAULT_ERROR_STATUS = 400;

export function parseOptions(limits: HttpLimits): ParseDocumentOptions {
  return {
    maxDepth: limits.maxJsonDepth,
    maxDocumentSize: limits.maxDocumentBytes,
    maxIdLength: limits.maxDocIdBytes > 0 ? limits.maxDocIdBytes : undefined,
  };
}

/**
 * Parses a request body or a scanned `_bulk_docs` element with the server's limits. `urlId`
 * names the document in `document_too_large` when the body has no `_id`, as CouchDB does.
 */
export function parseWithLimits(
  input: Uint8Array | ScannedValue,
  limits: HttpLimits,
  urlId?: string,
): DocumentWrite {
  try {
    return parseDocument(input, parseOptions(limits));
  } catch (error) {
    if (urlId !== undefined && isCouchError(error) && error.error === 'document_too_large') {
      throw errors.documentTooLarge(urlId);
    }
    throw error;
  }
}

/**
 * Gives a parsed document its final id, checks what `new_edits=false` requires and prepares
 * its attachments (`_local/` documents keep none, as in CouchDB).
 */
export function withId(
  doc: DocumentWrite,
  id: string,
  newEdits: boolean,
  attachmentOptions: PrepareOptions = {},
): WriteDocument {
  const kind = docKind(id);
  if (!newEdits) requireReplicatedRevisions(doc.revisions, kind);
  const attachments =
    doc.attachments === null || kind === 'local'
      ? null
      : prepareAttachments(doc.attachments.entries, attachmentOptions);
  return { ...doc, id, kind, attachments };
}

/** Validates an id given in a URL (raw bytes) with the server's id length limit. */
export function validateUrlDocId(bytes: Uint8Array, limits: HttpLimits): string {
  return validateDocId(bytes, parseOptions(limits));
}

/** Returns the CouchDB error a failed single-document write answers with. */
export function writeError(result: Extract<WriteResult, { ok: false }>): CouchError {
  const status = ERROR_STATUS[result.error] ?? DEFAULT_ERROR_STATUS;
  return new CouchError(status, result.error, result.reason);
}
