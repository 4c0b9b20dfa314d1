/**
 * Document ids as CouchDB 3.x validates them (couch_doc:validate_docid), and the three kinds
 * of document they name: normal, design (`_design/...`) and local (`_local/...`, kept apart
 * from the revision trees, never in `_changes` or `_all_docs`).
 *
 * Each check raises `illegal_docid` with CouchDB's reason, in CouchDB's order:
 * - not a string;
 * - empty;
 * - exactly `_design/` or `_local/`;
 * - longer than the configured maximum in UTF-8 bytes (CouchDB's `max_document_id_length`,
 *   unlimited by default);
 * - not valid UTF-8;
 * - starting with `_` without one of the two reserved prefixes.
 */
import { isUtf8 } from 'node:buffer';
import { errors } from '../util/couch-error.js';

export type DocKind = 'normal' | 'design' | 'local';

export const DESIGN_PREFIX = '_design/';
export const LOCAL_PREFIX = '_local/';

export interface DocIdOptions {
  /** Maximum id length in UTF-8 bytes; unlimited when absent. */
  readonly maxIdLength?: number;
}

/** Matches a UTF-16 surrogate that is not part of a pair, which UTF-8 cannot encode. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Returns the kind of document a valid id names. */
export function docKind(id: string): DocKind {
  if (id.startsWith(LOCAL_PREFIX)) return 'local';
  if (id.startsWith(DESIGN_PREFIX)) return 'design';
  return 'normal';
}

/**
 * Validates a document id from a body (a string) or a URL (raw bytes, which may be invalid
 * UTF-8) and returns it as a string. Raises `illegal_docid` as described in the file header.
 */
export function validateDocId(id: unknown, options: DocIdOptions = {}): string {
  let text: string;
  let validUtf8: boolean;
  let byteLength: number;
  if (id instanceof Uint8Array) {
    validUtf8 = isUtf8(id);
    text = Buffer.from(id.buffer, id.byteOffset, id.length).toString('utf8');
    byteLength = id.length;
  } else if (typeof id === 'string') {
    validUtf8 = !LONE_SURROGATE.test(id);
    text = id;
    byteLength = Buffer.byteLength(id);
  } else {
    throw errors.illegalDocId('Document id must be a string');
  }

  if (byteLength === 0) throw errors.illegalDocId('Document id must not be empty');
  if (text === DESIGN_PREFIX) throw errors.illegalDocId('Illegal document id `_design/`');
  if (text === LOCAL_PREFIX) throw errors.illegalDocId('Illegal document id `_local/`');
  const maxIdLength = options.maxIdLength ?? Number.POSITIVE_INFINITY;
  if (maxIdLength > 0 && byteLength > maxIdLength) {
    throw errors.illegalDocId('Document id is too long');
  }
  if (!validUtf8) throw errors.illegalDocId('Document id must be valid UTF-8');
  if (text.startsWith('_') && docKind(text) === 'normal') throw errors.reservedDocId();
  return text;
}
