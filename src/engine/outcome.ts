/**
 * The outcome of applying one log entry, its encoding, and the hash chain over outcomes.
 *
 * Outcomes are what the HTTP layer replies with: per-document results for a document write
 * (`{ok, id, rev}` or `{id, error, reason}` with CouchDB's error names, in request order), one
 * result for a `_local/` write, `ok` or an error for the other commands, and `none` for an
 * entry that carries no command (the leader's empty no-op, a configuration entry).
 *
 * Encoding, version 1 (varints and strings as in doc-info.ts), used by the request-id table
 * and the hash chain, so it must stay deterministic:
 *
 *   version:u8 kind:u8, then per kind
 *   documents  count:varint result*      local  result      error  error:string reason:string
 *   ok, none   nothing
 *   purge      count:varint (id:string revCount:varint rev:string*)*
 *   result := ok:u8, id:string, then rev:string when ok, else error:string reason:string
 *
 * Hash chain: `chain(0)` is the single byte 0, and applying entry `i` with outcome `o` gives
 * `chain(i) = SHA-256(chain(i - 1) || index as u64be || encode(o))`. Two replicas at the same
 * applied index hold the same chain exactly when every outcome so far was the same.
 */
import { createHash } from 'node:crypto';
import { ByteReader, ByteWriter } from '../document/bytes.js';
import type { PurgeResult, WriteResult } from '../http/backend.js';
import { assert } from '../util/assert.js';
import { readString, writeString } from './doc-info.js';

const OUTCOME_VERSION = 1;
const INDEX_BYTES = 8;

export type EntryOutcome =
  | { readonly kind: 'documents'; readonly results: readonly WriteResult[] }
  | { readonly kind: 'local'; readonly result: WriteResult }
  | { readonly kind: 'ok' }
  | { readonly kind: 'error'; readonly error: string; readonly reason: string }
  | { readonly kind: 'none' }
  /** The revisions a purge removed, per requested document in request order. */
  | { readonly kind: 'purge'; readonly results: readonly PurgeResult[] };

const KIND_CODES = { documents: 1, local: 2, ok: 3, error: 4, none: 5, purge: 6 } as const;
const KINDS = new Map<number, EntryOutcome['kind']>(
  Object.entries(KIND_CODES).map(([kind, code]) => [code, kind as EntryOutcome['kind']]),
);

/** The outcome of an entry as `stage` returns it. */
export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  /** The command's request id, or null for an entry without a command. */
  readonly requestId: string | null;
  /** True when the request id was applied before; the outcome is the stored one. */
  readonly duplicate: boolean;
  readonly outcome: EntryOutcome;
}

export const NONE_OUTCOME: EntryOutcome = Object.freeze({ kind: 'none' });
export const OK_OUTCOME: EntryOutcome = Object.freeze({ kind: 'ok' });

/** The chain before any entry is applied. */
export const INITIAL_HASH_CHAIN: Buffer = Buffer.from([0]);

function writeResult(writer: ByteWriter, result: WriteResult): void {
  writer.writeByte(result.ok ? 1 : 0);
  writeString(writer, result.id);
  if (result.ok) {
    writeString(writer, result.rev);
    return;
  }
  writeString(writer, result.error);
  writeString(writer, result.reason);
}

function readResult(reader: ByteReader): WriteResult {
  const ok = reader.readByte() === 1;
  const id = readString(reader);
  if (ok) return { ok: true, id, rev: readString(reader) };
  const error = readString(reader);
  return { ok: false, id, error, reason: readString(reader) };
}

export function encodeOutcome(outcome: EntryOutcome): Buffer {
  const writer = new ByteWriter();
  writer.writeByte(OUTCOME_VERSION);
  writer.writeByte(KIND_CODES[outcome.kind]);
  switch (outcome.kind) {
    case 'documents':
      writer.writeVarint(outcome.results.length);
      for (const result of outcome.results) writeResult(writer, result);
      break;
    case 'local':
      writeResult(writer, outcome.result);
      break;
    case 'error':
      writeString(writer, outcome.error);
      writeString(writer, outcome.reason);
      break;
    case 'purge':
      writer.writeVarint(outcome.results.length);
      for (const result of outcome.results) {
        writeString(writer, result.id);
        writer.writeVarint(result.purged.length);
        for (const rev of result.purged) writeString(writer, rev);
      }
      break;
    case 'ok':
    case 'none':
      break;
  }
  return writer.finish();
}

function readPurgeResults(reader: ByteReader): PurgeResult[] {
  const count = reader.readVarint();
  const results: PurgeResult[] = [];
  for (let i = 0; i < count; i++) {
    const id = readString(reader);
    const revCount = reader.readVarint();
    const purged: string[] = [];
    for (let j = 0; j < revCount; j++) purged.push(readString(reader));
    results.push({ id, purged });
  }
  return results;
}

export function decodeOutcome(bytes: Uint8Array): EntryOutcome {
  const reader = new ByteReader(bytes);
  const version = reader.readByte();
  assert(version === OUTCOME_VERSION, () => `unknown outcome version ${version}`);
  const code = reader.readByte();
  const kind = KINDS.get(code);
  assert(kind !== undefined, () => `unknown outcome kind ${code}`);
  let outcome: EntryOutcome;
  switch (kind) {
    case 'documents': {
      const count = reader.readVarint();
      const results: WriteResult[] = [];
      for (let i = 0; i < count; i++) results.push(readResult(reader));
      outcome = { kind, results };
      break;
    }
    case 'local':
      outcome = { kind, result: readResult(reader) };
      break;
    case 'error':
      outcome = { kind, error: readString(reader), reason: readString(reader) };
      break;
    case 'ok':
      outcome = OK_OUTCOME;
      break;
    case 'none':
      outcome = NONE_OUTCOME;
      break;
    case 'purge':
      outcome = { kind, results: readPurgeResults(reader) };
      break;
  }
  assert(reader.remaining === 0, 'an outcome has no trailing bytes');
  return outcome;
}

/** Returns the chain after applying entry `index` with the encoded outcome `outcome`. */
export function extendHashChain(chain: Uint8Array, index: number, outcome: Uint8Array): Buffer {
  const indexBytes = Buffer.alloc(INDEX_BYTES);
  indexBytes.writeBigUInt64BE(BigInt(index), 0);
  return createHash('sha256').update(chain).update(indexBytes).update(outcome).digest();
}
