/**
 * Update sequences: integers inside the engine, strings `N-<opaque>` outside it. `N` is the
 * update sequence, which every replica reaches identically by applying the same entries, and
 * `<opaque>` is the first 16 hex digits of the database uuid, which every replica of one
 * database shares. Neither part contains `,` or `}` (nano extracts `last_seq` from a
 * `_changes` body with a regular expression).
 *
 * A `since` a client sends back may be `N-<opaque>`, a plain integer `N`, or `now`. A
 * sequence with another database's opaque part (a database deleted and created again under
 * the same name) starts the feed from the beginning, as CouchDB rewinds a sequence whose
 * shard uuid no longer matches. A sequence past the update sequence is accepted: a replica
 * that is behind reaches it later, and until then the feed is empty. Anything else raises
 * `invalid_since_seq`.
 */
import { errors } from '../util/couch-error.js';

/** Hex digits of the database uuid that every sequence string carries. */
export const SEQ_OPAQUE_DIGITS = 16;

const PLAIN_SEQ = /^[0-9]+$/;
const FULL_SEQ = /^([0-9]+)-([0-9a-zA-Z]+)$/;

/** Returns the opaque part of the sequences of a database with this uuid (hex). */
export function seqOpaque(uuidHex: string): string {
  return uuidHex.slice(0, SEQ_OPAQUE_DIGITS);
}

/** Formats an update sequence for clients. */
export function formatSeq(seq: number, opaque: string): string {
  return `${seq}-${opaque}`;
}

function integerOf(text: string, original: string): number {
  const seq = Number(text);
  if (!Number.isSafeInteger(seq)) {
    throw errors.invalidSinceSeq(`Sequence ${original} is out of range.`);
  }
  return seq;
}

/**
 * Parses a `since` a client sent: `N-<opaque>`, `N` or `now` (which gives `updateSeq`).
 * Returns 0 for a sequence of another database; raises `invalid_since_seq` for anything else.
 */
export function parseSeq(text: string, opaque: string, updateSeq: number): number {
  if (text === 'now') return updateSeq;
  if (PLAIN_SEQ.test(text)) return integerOf(text, text);
  const match = FULL_SEQ.exec(text);
  if (match === null) throw errors.invalidSinceSeq(`Malformed sequence supplied: ${text}`);
  const seq = integerOf(match[1]!, text);
  return match[2] === opaque ? seq : 0;
}
