/**
 * Revisions as CouchDB 3.x writes them: `N-<id>`, where N (the position, or generation) counts
 * edits from the first revision (1) and `<id>` is usually 32 lowercase hex digits. `_local/`
 * documents use `0-N` instead, with N a counter.
 *
 * A revision id is kept as its canonical string, which follows CouchDB's binary form:
 * - an id of exactly 32 bytes must be hexadecimal; CouchDB stores it as 16 raw bytes, so it is
 *   canonical in lowercase whatever case the client used;
 * - an id of exactly 16 bytes is text that CouchDB cannot tell from 16 raw bytes, and it shows
 *   it in hex from then on, so its canonical form is the hex of its UTF-8 bytes;
 * - any other id (including the empty one) is kept as text.
 * So a canonical id is hex if and only if it is 32 lowercase hex digits.
 *
 * Order: siblings and winners compare ids as CouchDB compares Erlang binaries: bytewise over
 * the binary form (16 raw bytes, or the UTF-8 text), a prefix sorting first.
 *
 * This module parses and formats only; it does not know trees (see rev-tree.ts).
 */
import { errors } from '../util/couch-error.js';

/** One revision: position and canonical id. */
export interface Rev {
  readonly pos: number;
  readonly id: string;
}

/**
 * A revision and its ancestors, newest first, as in `_revisions`: `ids[0]` is at position
 * `start`, `ids[1]` at `start - 1`, and so on. `{start: 0, ids: []}` means no revision.
 */
export interface RevPath {
  readonly start: number;
  readonly ids: readonly string[];
}

/** The history of a document that names no revision. */
export const NO_REVISIONS: RevPath = Object.freeze({ start: 0, ids: Object.freeze([]) });

/** Length in bytes of a revision id stored as raw bytes (an MD5 digest). */
export const REV_ID_BINARY_BYTES = 16;
/** Length of the hex form of such an id. */
export const REV_ID_HEX_LENGTH = 32;

const HEX_ID = /^[0-9a-f]{32}$/;
const ANY_CASE_HEX_ID = /^[0-9a-fA-F]{32}$/;
/** Position syntax, as Erlang's `list_to_integer/1` accepts it. */
const POSITION = /^\+?[0-9]+$/;
/** Local revision counter syntax, as Erlang's `binary_to_integer/1` accepts it. */
const LOCAL_COUNTER = /^[+-]?[0-9]+$/;

/** True when a canonical id is stored as 16 raw bytes (shown as 32 hex digits). */
export function isHexRevId(id: string): boolean {
  return id.length === REV_ID_HEX_LENGTH && HEX_ID.test(id);
}

/**
 * Returns the canonical form of a revision id as a client wrote it, or null when CouchDB
 * rejects it (32 bytes that are not hex).
 */
export function canonicalRevId(text: string): string | null {
  const byteLength = Buffer.byteLength(text);
  if (byteLength === REV_ID_HEX_LENGTH) {
    return ANY_CASE_HEX_ID.test(text) ? text.toLowerCase() : null;
  }
  if (byteLength === REV_ID_BINARY_BYTES) return Buffer.from(text).toString('hex');
  return text;
}

/** Returns the bytes CouchDB compares for this canonical id. */
export function revIdBytes(id: string): Buffer {
  return isHexRevId(id) ? Buffer.from(id, 'hex') : Buffer.from(id);
}

/** Compares two canonical ids in CouchDB's order (bytewise over their binary forms). */
export function compareRevIds(a: string, b: string): number {
  if (a === b) return 0;
  if (isHexRevId(a) && isHexRevId(b)) return a < b ? -1 : 1;
  return Buffer.compare(revIdBytes(a), revIdBytes(b));
}

/** Compares by position, then by id. */
export function compareRevs(a: Rev, b: Rev): number {
  if (a.pos !== b.pos) return a.pos < b.pos ? -1 : 1;
  return compareRevIds(a.id, b.id);
}

/** True when both name the same revision. */
export function sameRev(a: Rev, b: Rev): boolean {
  return a.pos === b.pos && a.id === b.id;
}

/** Formats `N-<id>`. */
export function formatRev(rev: Rev): string {
  return `${rev.pos}-${rev.id}`;
}

/**
 * Parses `N-<id>` as CouchDB does (the position is the text before the first `-`, an optional
 * `+` and decimal digits). Returns null for anything CouchDB rejects with `Invalid rev format`.
 *
 * NOTE: CouchDB also takes positions beyond 2^53 and 32-character ids with a sign; Divan
 * rejects both, because a position must fit a JavaScript number exactly.
 */
export function tryParseRev(text: unknown): Rev | null {
  if (typeof text !== 'string') return null;
  const dash = text.indexOf('-');
  if (dash < 0) return null;
  const posText = text.slice(0, dash);
  if (!POSITION.test(posText)) return null;
  const pos = Number(posText);
  if (!Number.isSafeInteger(pos)) return null;
  const id = canonicalRevId(text.slice(dash + 1));
  if (id === null) return null;
  return { pos, id };
}

/** Parses `N-<id>` or raises `bad_request` / `Invalid rev format`. */
export function parseRev(text: unknown): Rev {
  const rev = tryParseRev(text);
  if (rev === null) throw errors.invalidRev();
  return rev;
}

/** Returns the revision a history names (its newest), or null when it names none. */
export function newestRev(history: RevPath): Rev | null {
  const id = history.ids[0];
  return id === undefined ? null : { pos: history.start, id };
}

/** Formats the revision of a `_local/` document: `0-N`. */
export function formatLocalRev(counter: number): string {
  return `0-${counter}`;
}

/**
 * Returns the counter of the next revision of a `_local/` document, as CouchDB 3.x computes it
 * when it writes one. A delete always gives 0, no revision gives 1, and `0-N` gives N + 1.
 * Any other history gives null, which CouchDB rejects with `Invalid rev format`.
 *
 * CouchDB 3.x does not compare the given revision with the stored one, so `_local/` writes
 * never conflict. The engine decides whether to follow that.
 *
 * NOTE: a counter of exactly 16 digits arrives here in hex (see `canonicalRevId`) and gives
 * null, where CouchDB would count on.
 */
export function nextLocalRevCounter(history: RevPath, deleted: boolean): number | null {
  if (deleted) return 0;
  if (history.start !== 0) return null;
  const counterText = history.ids[0];
  if (counterText === undefined) return 1;
  if (!LOCAL_COUNTER.test(counterText)) return null;
  const counter = Number(counterText);
  if (!Number.isSafeInteger(counter + 1)) return null;
  return counter + 1;
}
