/**
 * Multi-document routes: `_bulk_docs`, `_bulk_get` and `_revs_diff`, as CouchDB 3.x replies to
 * them.
 *
 * `_bulk_docs`: every document is parsed before anything is written, so one invalid document
 * (bad JSON member, illegal id, too large) fails the whole request, as in CouchDB. The reply is
 * 201 with one `{ok,id,rev}` or `{id,error,reason}` per document; with `new_edits:false` only
 * the errors are listed.
 *
 * `_bulk_get`: one `{id, docs: [...]}` per requested document, each doc `{ok: doc}` or
 * `{error: {id, rev, error, reason}}` (`rev` is `"undefined"` when none was asked for, as in
 * CouchDB). All requested documents are read from one snapshot. `attachments=true` and an
 * item's `atts_since` send attachment data; a client that accepts `multipart/mixed` gets one
 * part per revision (with `X-Doc-Id` and `X-Rev-Id`), its attachments as nested parts.
 *
 * `_revs_diff`: for each id, the revisions the database lacks, with `possible_ancestors` when
 * there are any; ids with nothing missing are left out.
 */
import { decodeMember, kindAt, scanJson } from '../../document/json.js';
import { formatRev, parseRev, type Rev } from '../../document/rev.js';
import { missingRevisions, possibleAncestors } from '../../document/rev-tree-query.js';
import { type CouchError, errors, isCouchError } from '../../util/couch-error.js';
import type { DatabaseSnapshot, WriteDocument } from '../backend.js';
import type { RequestScope } from '../context.js';
import {
  attachmentOptionsFromQuery,
  jsonArray,
  type OpenRevsEntry,
  PLAIN_READ,
  parseRevList,
  type ReadOptions,
  readDocument,
  readOpenRevs,
} from '../document-read.js';
import { MultipartWriter } from '../multipart.js';
import {
  acceptsExactly,
  addErrorPart,
  addRevisionPart,
  MULTIPART_MIXED,
  sendMultipart,
} from '../multipart-docs.js';
import { parseWithLimits, withId } from '../write.js';
import { withSnapshot } from './database.js';
import { multipartOptions } from './document.js';
import { newUuid } from './server.js';

export async function handleBulkDocs(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const body = scope.jsonObjectBody();
  const docsMember = body.members.find((member) => member.key === 'docs');
  if (docsMember === undefined || kindAt(body.bytes, docsMember.valueStart) !== 'array') {
    throw errors.bulkDocsMissingDocs();
  }
  const newEditsMember = body.members.find((member) => member.key === 'new_edits');
  const newEdits = newEditsMember === undefined || decodeMember(body, newEditsMember) !== false;

  const docsArray = scanJson(body.bytes, {
    start: docsMember.valueStart,
    end: docsMember.end,
    maxDepth: scope.limits.maxJsonDepth,
  });
  if (docsArray.elements.length > scope.limits.maxBulkDocs) {
    throw errors.bulkDocsCountExceeded(scope.limits.maxBulkDocs);
  }
  const docs: WriteDocument[] = docsArray.elements.map((span) => {
    const element = scanJson(body.bytes, {
      start: span.start,
      end: span.end,
      maxDepth: scope.limits.maxJsonDepth,
    });
    const parsed = parseWithLimits(element, scope.limits);
    if (parsed.id === null && !newEdits) throw errors.illegalDocId('Document id must not be empty');
    return withId(parsed, parsed.id ?? newUuid(), newEdits, scope.server.attachmentCompression);
  });

  const results = docs.length === 0 ? [] : await scope.backend.write(db, { docs, newEdits });
  const listed = newEdits ? results : results.filter((result) => !result.ok);
  scope.sendJson(
    201,
    listed.map((result) =>
      result.ok
        ? { ok: true, id: result.id, rev: result.rev }
        : { id: result.id, error: result.error, reason: result.reason },
    ),
  );
}

interface BulkGetItem {
  readonly id: unknown;
  readonly rev: unknown;
  /** `atts_since`: revisions whose attachments the client has; null when absent. */
  readonly attsSince: readonly Rev[] | null;
}

function parseBulkGetItems(scope: RequestScope): BulkGetItem[] {
  const body = scope.jsonObjectBody();
  const docsMember = body.members.find((member) => member.key === 'docs');
  if (docsMember === undefined || kindAt(body.bytes, docsMember.valueStart) !== 'array') {
    throw errors.bulkGetMissingDocs();
  }
  const items = decodeMember(body, docsMember) as unknown[];
  if (items.length > scope.limits.maxBulkGet) {
    throw errors.bulkGetCountExceeded(scope.limits.maxBulkGet);
  }
  return items.map((item) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw errors.badRequest('Each item of `docs` must be a JSON object.');
    }
    const object = item as Record<string, unknown>;
    let attsSince: Rev[] | null = null;
    if (object.atts_since !== undefined) {
      if (!Array.isArray(object.atts_since)) {
        throw errors.badRequest('`atts_since` must be a list of revisions.');
      }
      attsSince = parseRevList(object.atts_since);
    }
    return { id: object.id, rev: object.rev, attsSince };
  });
}

/** The read options of one `_bulk_get` item: the query's, with the item's `atts_since`. */
function itemOptions(options: ReadOptions, item: BulkGetItem): ReadOptions {
  if (item.attsSince === null) return options;
  return {
    ...options,
    attachments: { ...options.attachments, attachments: true, attsSince: item.attsSince },
  };
}

function readItem(
  snapshot: DatabaseSnapshot,
  id: string,
  rev: string | undefined,
  latest: boolean,
  options: ReadOptions,
): OpenRevsEntry[] {
  const record = snapshot.document(id);
  if (rev !== undefined) return readOpenRevs(record, [rev], latest, options);
  return [{ kind: 'ok', rendered: readDocument(record, undefined, false, options) }];
}

function bulkGetError(id: unknown, rev: string, error: CouchError): string {
  return JSON.stringify({ error: { id, rev, error: error.error, reason: error.reason } });
}

/** Reads one `_bulk_get` item into its `docs` entries (JSON text or bytes). */
function bulkGetDocs(
  item: BulkGetItem,
  read: (id: string, rev: string | undefined) => OpenRevsEntry[],
): (Buffer | string)[] {
  const revLabel = typeof item.rev === 'string' ? item.rev : 'undefined';
  if (typeof item.id !== 'string' || item.id === '') {
    return [
      bulkGetError(item.id ?? null, revLabel, errors.illegalDocId('Document id must be a string')),
    ];
  }
  try {
    const entries = read(item.id, typeof item.rev === 'string' ? item.rev : undefined);
    return entries.map((entry) =>
      entry.kind === 'ok'
        ? Buffer.concat([Buffer.from('{"ok":'), entry.rendered.bytes, Buffer.from('}')])
        : bulkGetError(item.id, entry.rev, errors.docNotFound('missing')),
    );
  } catch (error) {
    if (!isCouchError(error)) throw error;
    return [bulkGetError(item.id, revLabel, error)];
  }
}

export async function handleBulkGet(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const items = parseBulkGetItems(scope);
  const options: ReadOptions = {
    ...PLAIN_READ,
    revs: scope.query.boolean('revs', false),
    attachments: attachmentOptionsFromQuery(scope.query),
  };
  const latest = scope.query.boolean('latest', false);
  if (acceptsExactly(scope, MULTIPART_MIXED)) {
    await sendBulkGetMultipart(scope, db, items, multipartOptions(options), latest);
    return;
  }

  const results = await withSnapshot(scope, db, (snapshot) =>
    items.map((item) => {
      const docs = bulkGetDocs(item, (id, rev) =>
        readItem(snapshot, id, rev, latest, itemOptions(options, item)),
      );
      return Buffer.concat([
        Buffer.from(`{"id":${JSON.stringify(item.id ?? null)},"docs":`),
        jsonArray(docs),
        Buffer.from('}'),
      ]);
    }),
  );
  scope.sendJsonBytes(
    200,
    Buffer.concat([Buffer.from('{"results":'), jsonArray(results), Buffer.from('}')]),
  );
}

/** `_bulk_get` as `multipart/mixed`: a part per revision or error, in request order. */
async function sendBulkGetMultipart(
  scope: RequestScope,
  db: string,
  items: readonly BulkGetItem[],
  options: ReadOptions,
  latest: boolean,
): Promise<void> {
  const writer = new MultipartWriter();
  await withSnapshot(scope, db, (snapshot) => {
    for (const item of items) {
      const revLabel = typeof item.rev === 'string' ? item.rev : 'undefined';
      const idHeader: Array<[string, string]> =
        typeof item.id === 'string' ? [['X-Doc-Id', encodeURIComponent(item.id)]] : [];
      let entries: OpenRevsEntry[];
      try {
        if (typeof item.id !== 'string' || item.id === '') {
          throw errors.illegalDocId('Document id must be a string');
        }
        entries = readItem(
          snapshot,
          item.id,
          typeof item.rev === 'string' ? item.rev : undefined,
          latest,
          itemOptions(options, item),
        );
      } catch (error) {
        if (!isCouchError(error)) throw error;
        addErrorPart(writer, errorJson(item.id ?? null, revLabel, error), idHeader);
        continue;
      }
      for (const entry of entries) {
        if (entry.kind === 'ok') {
          const revHeader: [string, string] = ['X-Rev-Id', formatRev(entry.rendered.rev)];
          addRevisionPart(writer, entry.rendered, [...idHeader, revHeader]);
        } else {
          addErrorPart(
            writer,
            errorJson(item.id, entry.rev, errors.docNotFound('missing')),
            idHeader,
          );
        }
      }
    }
  });
  sendMultipart(scope, 200, writer.contentType('mixed'), writer.finish());
}

function errorJson(id: unknown, rev: string, error: CouchError): string {
  return JSON.stringify({ error: error.error, id, rev, reason: error.reason });
}

export async function handleRevsDiff(scope: RequestScope, db: string): Promise<void> {
  scope.requireJsonContentType();
  const body = scope.jsonObjectBody();
  const request: { id: string; revs: Rev[] }[] = body.members.map((member) => {
    const value = decodeMember(body, member);
    if (!Array.isArray(value)) {
      throw errors.badRequest(`The revisions of ${member.key} must be a list of revisions.`);
    }
    return { id: member.key, revs: value.map((rev) => parseRev(rev)) };
  });

  // The reply is built as text so that ids keep request order (JSON.stringify moves
  // integer-like keys first) and an id such as `__proto__` stays an ordinary member.
  const members = await withSnapshot(scope, db, (snapshot) => {
    const result: string[] = [];
    for (const { id, revs } of request) {
      const record = snapshot.document(id);
      const tree = record === null ? [] : record.tree();
      const missing = record === null ? revs : missingRevisions(tree, revs);
      if (missing.length === 0) continue;
      const entry: { missing: string[]; possible_ancestors?: string[] } = {
        missing: missing.map(formatRev),
      };
      const ancestors = record === null ? [] : possibleAncestors(tree, missing);
      if (ancestors.length > 0) entry.possible_ancestors = ancestors.map(formatRev);
      result.push(`${JSON.stringify(id)}:${JSON.stringify(entry)}`);
    }
    return result;
  });
  scope.sendJsonBytes(200, `{${members.join(',')}}`);
}
