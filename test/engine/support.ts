/**
 * Helpers for the engine tests: documents as JSON bytes, commands for `stage`, and a canonical
 * dump of a database's state without file positions. Two files with the same data (replicas,
 * or a file and its reference run) then compare equal byte for byte.
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { ByteWriter } from '../../src/document/bytes.js';
import type { RevTree } from '../../src/document/rev-tree.js';
import { type LeafValueCodec, writeRevTree } from '../../src/document/rev-tree-codec.js';
import type { Command, CommandDocument } from '../../src/engine/commands.js';
import type { StoredLeaf } from '../../src/engine/doc-info.js';
import type { EngineSnapshot } from '../../src/engine/snapshot.js';

export function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** Builds a document of a command; a string body is raw JSON, kept byte for byte. */
export function doc(
  id: string,
  body: Record<string, unknown> | string = {},
  revisions: { start: number; ids: string[] } = { start: 0, ids: [] },
  deleted = false,
): CommandDocument {
  const bytes = typeof body === 'string' ? Buffer.from(body) : json(body);
  return { id, revisions, deleted, body: bytes, attachments: null };
}

/** Builds a `documents` command. */
export function writeCommand(requestId: string, docs: CommandDocument[], newEdits = true): Command {
  return { kind: 'documents', requestId, newEdits, docs };
}

/** Reads a leaf's body and attachments into the canonical dump. */
function leafCodecFor(snapshot: EngineSnapshot): LeafValueCodec<StoredLeaf> {
  return {
    encode(leaf, writer) {
      writer.writeByte(leaf.deleted ? 1 : 0);
      writer.writeVarint(leaf.seq);
      const body = snapshot.readRecord(leaf.body);
      writer.writeVarint(body.length);
      writer.writeBytes(body);
      const attachments = leaf.attachments === null ? [] : snapshot.attachments(leaf.attachments);
      writer.writeVarint(attachments.length);
      for (const attachment of attachments) {
        writeText(writer, attachment.name);
        writeText(writer, attachment.contentType);
        writer.writeVarint(attachment.revpos);
        writeText(writer, attachment.digest);
        writer.writeVarint(attachment.length);
        writeText(writer, attachment.encoding);
        const stored = attachment.read(0, attachment.encodedLength);
        writer.writeVarint(stored.length);
        writer.writeBytes(stored);
      }
    },
    decode() {
      throw new Error('the canonical dump is never decoded');
    },
  };
}

function writeText(writer: ByteWriter, text: string): void {
  const bytes = Buffer.from(text);
  writer.writeVarint(bytes.length);
  writer.writeBytes(bytes);
}

/**
 * Encodes every fact of a database's applied state, without file positions: documents with their
 * revision trees, bodies and attachments, by_seq rows, local documents, counters, the security
 * object, the kept purge requests, and (unless `documentsOnly`) the applied index, hash chain
 * and request-id table. Equal dumps mean equal databases.
 */
export function canonicalDump(snapshot: EngineSnapshot, documentsOnly = false): Buffer {
  const writer = new ByteWriter();
  const fields = snapshot.fields;
  writer.writeVarint(fields.updateSeq);
  writer.writeVarint(fields.revsLimit);
  if (!documentsOnly) {
    writer.writeVarint(fields.applied.index);
    writer.writeBytes(fields.hashChain);
  }
  writeText(writer, snapshot.security().toString('utf8'));
  writer.writeVarint(fields.purgeSeq);
  writer.writeVarint(fields.purgedInfosLimit);
  writeText(writer, JSON.stringify(snapshot.purgedInfos()));
  const codec = leafCodecFor(snapshot);
  for (const record of snapshot.changesAfter(0, false)) {
    writer.writeVarint(record.updateSeq);
    writeText(writer, record.id);
    writeRevTree(writer, record.storedTree() as RevTree<StoredLeaf>, codec);
  }
  for (const local of snapshot.localDocuments()) {
    writeText(writer, local.id);
    writeText(writer, local.rev);
    writer.writeBytes(local.body);
  }
  if (documentsOnly) return writer.finish();
  for (const [requestId, record] of snapshot.requestRecords()) {
    writeText(writer, requestId);
    writer.writeVarint(record.index);
    writer.writeBytes(record.outcome);
  }
  return writer.finish();
}

export function dumpDigest(snapshot: EngineSnapshot): string {
  return createHash('sha256').update(canonicalDump(snapshot)).digest('hex');
}

/** Ids drawn from a small set, so that writes collide and conflict. */
export const docIdArbitrary = fc.constantFrom('a', 'b', 'c', '_design/d', 'ü', '_local/l');

const bodyArbitrary = fc.dictionary(
  fc.constantFrom('x', 'y', 'big', 'n'),
  fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant('12345678901234567890123')),
  { maxKeys: 3 },
);

/** Random documents without revisions; the write decides whether they conflict. */
export const commandDocumentArbitrary: fc.Arbitrary<CommandDocument> = fc
  .record({ id: docIdArbitrary, body: bodyArbitrary, deleted: fc.boolean() })
  .map(({ id, body, deleted }) => doc(id, body, { start: 0, ids: [] }, deleted));
