/**
 * The request target (path and query) as CouchDB reads it, and the database name rules.
 *
 * Path rules:
 * - empty segments are dropped, so `/db/` is `/db` and `//_cluster_setup` is `/_cluster_setup`;
 * - each segment is percent-decoded on its own, so `%2F` inside a segment is a `/` in a name
 *   (nano encodes database names, and `_design%2Fx` names a design document);
 * - a segment is decoded to bytes: whether they are valid UTF-8 is up to the rule that reads
 *   them (document ids have their own error for it);
 * - a malformed percent escape is a 400 `bad_request`.
 *
 * Database names (CouchDB 3.x): `^[a-z][a-z0-9_$()+/-]*$`, or one of the system databases
 * (`_users`, `_replicator`, `_global_changes`), which may also follow a `prefix/`.
 *
 * What this does not do: decide which route a path is (router.ts).
 */
import { errors } from '../util/couch-error.js';

const DB_NAME = /^[a-z][a-z0-9_$()+/-]*$/;
const SYSTEM_DATABASES: ReadonlySet<string> = new Set(['_users', '_replicator', '_global_changes']);
const SYSTEM_SUFFIXES = ['/_users', '/_replicator'];

const PERCENT = 0x25;
const HEX_RADIX = 16;
const ESCAPE_LENGTH = 3;

/** One path segment: its decoded bytes and their UTF-8 reading. */
export interface PathSegment {
  readonly bytes: Buffer;
  readonly text: string;
}

export interface RequestTarget {
  readonly segments: readonly PathSegment[];
  /** Query parameters, `+` read as a space, as mochiweb reads them. */
  readonly query: URLSearchParams;
  /** The path as sent, for logs. */
  readonly rawPath: string;
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** Decodes `%XX` escapes into bytes; raises `bad_request` for a malformed escape. */
export function percentDecode(segment: string): Buffer {
  const raw = Buffer.from(segment, 'utf8');
  if (!raw.includes(PERCENT)) return raw;
  const out = Buffer.allocUnsafe(raw.length);
  let length = 0;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== PERCENT) {
      out[length++] = byte;
      continue;
    }
    const high = i + 1 < raw.length ? hexValue(raw[i + 1]!) : -1;
    const low = i + 2 < raw.length ? hexValue(raw[i + 2]!) : -1;
    if (high < 0 || low < 0) {
      throw errors.badRequest(`Invalid percent escape in URL path segment: ${segment}`);
    }
    out[length++] = high * HEX_RADIX + low;
    i += ESCAPE_LENGTH - 1;
  }
  return out.subarray(0, length);
}

/** Splits a request target (`/path?query`) into decoded segments and query parameters. */
export function parseRequestTarget(url: string): RequestTarget {
  const question = url.indexOf('?');
  const rawPath = question < 0 ? url : url.slice(0, question);
  const rawQuery = question < 0 ? '' : url.slice(question + 1);
  const segments: PathSegment[] = [];
  for (const part of rawPath.split('/')) {
    if (part === '') continue;
    const bytes = percentDecode(part);
    segments.push({ bytes, text: bytes.toString('utf8') });
  }
  return { segments, query: new URLSearchParams(rawQuery), rawPath };
}

/** True for a name `PUT /{db}` may create. */
export function isValidDatabaseName(name: string): boolean {
  if (SYSTEM_DATABASES.has(name)) return true;
  for (const suffix of SYSTEM_SUFFIXES) {
    if (name.endsWith(suffix) && DB_NAME.test(name.slice(0, -suffix.length))) return true;
  }
  return DB_NAME.test(name);
}

/** Raises `illegal_database_name` unless `name` is a valid database name. */
export function validateDatabaseName(name: string): string {
  if (!isValidDatabaseName(name)) throw errors.illegalDatabaseName(name);
  return name;
}

/** Percent-encodes a document id for a `Location` header, keeping the `/` of `_design/x`. */
export function encodeDocIdForUrl(id: string): string {
  for (const prefix of ['_design/', '_local/']) {
    if (id.startsWith(prefix)) return prefix + encodeURIComponent(id.slice(prefix.length));
  }
  return encodeURIComponent(id);
}
