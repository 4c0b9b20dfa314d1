/**
 * Deterministic revision ids: every replica that applies the same edit computes the same id,
 * so a revision id names its content and history. CouchDB 3.x does the same with an MD5 of the
 * Erlang term `[Deleted, ParentPos, ParentId, Body, Attachments]`. Divan hashes its own
 * encoding of the same facts, so its ids differ from CouchDB's. Clients treat ids as opaque,
 * so only the form (32 lowercase hex digits) has to match.
 *
 * The id is MD5 over these bytes, in this order (integers big-endian, unsigned):
 *
 *   offset  size  field
 *   0       1     encoding version, 0x01
 *   1       1     deleted flag: 0x00 live, 0x01 deleted
 *   2       8     parent position (uint64; 0 when there is no parent)
 *   10      4     parent id length L in bytes (uint32; 0 when there is no parent)
 *   14      L     parent id, the UTF-8 of its canonical string (32 lowercase hex digits for
 *                 a hex id; see rev.ts)
 *   ...     4     body length B (uint32)
 *   ...     B     body: the stored body bytes (the minified object without special members)
 *   ...     4     attachment count N (uint32)
 *   then N times, in the order given:
 *           4 + n name length and UTF-8 name
 *           4 + t content type length and UTF-8 content type
 *           4 + d digest length and UTF-8 digest (as stored, e.g. `md5-<base64>`)
 *
 * Every variable field has a length prefix, so two different inputs never encode to the same
 * bytes. The new revision is `parentPos + 1` (1 without a parent).
 */
import * as crypto from 'node:crypto';
import { assert } from '../util/assert.js';
import type { Rev } from './rev.js';

export const REVID_ENCODING_VERSION = 1;

const UINT32_MAX = 0xffff_ffff;
const HEADER_BYTES = 14;
const POSITION_OFFSET = 2;
const PARENT_LENGTH_OFFSET = 10;
const LENGTH_PREFIX_BYTES = 4;
const EMPTY = Buffer.alloc(0);

/** The attachment fields that enter its document's revision id. */
export interface RevIdAttachment {
  readonly name: string;
  readonly contentType: string;
  readonly digest: string;
}

export interface RevIdInput {
  readonly deleted: boolean;
  /** The revision the edit is based on; null for the first revision. */
  readonly parent: Rev | null;
  /** The stored body bytes. */
  readonly body: Uint8Array;
  readonly attachments?: readonly RevIdAttachment[];
}

/**
 * One-shot MD5 to hex (`crypto.hash`, Node.js 20.12 and later), without the `Hash` object that
 * `createHash` builds per call. Bulk writes compute one id per document.
 */
const md5Hex: (data: Buffer) => string =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (data) => (crypto as unknown as { hash: OneShotHash }).hash('md5', data, 'hex')
    : (data) => crypto.createHash('md5').update(data).digest('hex');

type OneShotHash = (algorithm: string, data: Buffer, encoding: 'hex') => string;

/** Returns the revision id (32 lowercase hex digits) of an edit. */
export function newRevId(input: RevIdInput): string {
  const parent = input.parent;
  const parentId = parent === null ? EMPTY : Buffer.from(parent.id, 'utf8');
  assert(parentId.length <= UINT32_MAX, 'parent revision id is too long');
  assert(
    input.body.length <= UINT32_MAX,
    () => `body of ${input.body.length} bytes is too long for a revision id`,
  );
  const attachments = input.attachments ?? [];
  const texts: Buffer[] = [];
  for (const attachment of attachments) {
    texts.push(
      Buffer.from(attachment.name, 'utf8'),
      Buffer.from(attachment.contentType, 'utf8'),
      Buffer.from(attachment.digest, 'utf8'),
    );
  }
  let length =
    HEADER_BYTES + parentId.length + LENGTH_PREFIX_BYTES + input.body.length + LENGTH_PREFIX_BYTES;
  for (const text of texts) {
    assert(
      text.length <= UINT32_MAX,
      () => `field of ${text.length} bytes is too long for a revision id`,
    );
    length += LENGTH_PREFIX_BYTES + text.length;
  }

  const bytes = Buffer.allocUnsafe(length);
  bytes[0] = REVID_ENCODING_VERSION;
  bytes[1] = input.deleted ? 1 : 0;
  bytes.writeBigUInt64BE(BigInt(parent === null ? 0 : parent.pos), POSITION_OFFSET);
  bytes.writeUInt32BE(parentId.length, PARENT_LENGTH_OFFSET);
  let offset = HEADER_BYTES;
  offset += parentId.copy(bytes, offset);
  offset = bytes.writeUInt32BE(input.body.length, offset);
  bytes.set(input.body, offset);
  offset += input.body.length;
  offset = bytes.writeUInt32BE(attachments.length, offset);
  for (const text of texts) {
    offset = bytes.writeUInt32BE(text.length, offset);
    offset += text.copy(bytes, offset);
  }
  assert(offset === length, 'revision id input filled exactly');
  return md5Hex(bytes);
}

/** Returns the new revision of an edit: its position and deterministic id. */
export function nextRev(input: RevIdInput): Rev {
  return { pos: input.parent === null ? 1 : input.parent.pos + 1, id: newRevId(input) };
}
