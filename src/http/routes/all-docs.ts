/**
 * `GET /{db}/_all_docs` and `POST` with `{"keys": [...]}`, as CouchDB 3.x answers them.
 *
 * Layout: `{"total_rows":N,"offset":O,"rows":[` then one row per line, separated by `,\r\n`,
 * then `\r\n]}` (with `"update_seq"` after `offset` when asked). Rows are
 * `{"id","key","value":{"rev"}}` plus `"doc"` with `include_docs=true`; with `keys`, an unknown
 * id gives `{"key","error":"not_found"}` and a deleted one `value.deleted:true` and
 * `"doc":null`, and `offset` is null.
 *
 * Keys compare as CouchDB's `_all_docs` compares them: strings by their UTF-8 bytes, and every
 * other JSON value before every string (Erlang's term order), so a non-string `startkey`
 * starts at the first id and a non-string `endkey` ends before it.
 */
import { compareCodePoints } from '../../document/collate.js';
import { decodeMember, kindAt, minifyJson, scanJson } from '../../document/json.js';
import { formatRev } from '../../document/rev.js';
import { errors } from '../../util/couch-error.js';
import type { DatabaseSnapshot, DocumentRecord, IdRange } from '../backend.js';
import type { RequestScope } from '../context.js';
import {
  attachmentOptionsFromQuery,
  PLAIN_READ,
  type ReadOptions,
  renderWinner,
} from '../document-read.js';
import type { RawJsonValue } from '../query.js';
import { withSnapshot } from './database.js';

const ROW_SEPARATOR = ',\r\n';

interface AllDocsQuery {
  readonly descending: boolean;
  readonly skip: number;
  readonly limit: number;
  readonly includeDocs: boolean;
  readonly readOptions: ReadOptions;
  readonly updateSeq: boolean;
  readonly keys: RawJsonValue[] | undefined;
  readonly range: IdRange | 'empty';
}

/** A key bound: a string, or a value that sorts before every string. */
type Bound = string | 'low' | undefined;

function bound(value: RawJsonValue | undefined): Bound {
  if (value === undefined) return undefined;
  return typeof value.value === 'string' ? value.value : 'low';
}

function keyRange(scope: RequestScope, descending: boolean): IdRange | 'empty' {
  const query = scope.query;
  const key = bound(query.json('key'));
  const start = key ?? bound(query.json('startkey', 'start_key'));
  const end = key ?? bound(query.json('endkey', 'end_key'));
  const inclusiveEnd = query.boolean('inclusive_end', true);

  // A bound below every string: ascending, it is no bound as a start and nothing as an end.
  if (descending ? start === 'low' : end === 'low') return 'empty';
  const startId = start === 'low' ? undefined : start;
  const endId = end === 'low' ? undefined : end;
  if (startId !== undefined && endId !== undefined) {
    const order = compareCodePoints(startId, endId);
    if (descending ? order < 0 : order > 0) {
      throw errors.queryParseError(
        'No rows can match your key range, reverse your start_key and end_key or set descending=true',
      );
    }
  }
  return { startId, endId, inclusiveEnd, descending };
}

function postedKeys(scope: RequestScope): RawJsonValue[] | undefined {
  if (scope.method !== 'POST') return undefined;
  scope.requireJsonContentType();
  const body = scope.jsonObjectBody();
  const keysMember = body.members.find((member) => member.key === 'keys');
  if (keysMember === undefined) return undefined;
  if (kindAt(body.bytes, keysMember.valueStart) !== 'array') {
    throw errors.badRequest('`keys` body member must be an array.');
  }
  const keys = scanJson(body.bytes, { start: keysMember.valueStart, end: keysMember.end });
  return keys.elements.map((span) => ({
    value: decodeMember(keys, { ...span, key: '', valueStart: span.start }),
    raw: minifyJson(body.bytes, span.start, span.end),
  }));
}

function parseAllDocsQuery(scope: RequestScope): AllDocsQuery {
  const query = scope.query;
  const descending = query.boolean('descending', false);
  const includeDocs = query.boolean('include_docs', false);
  const conflicts = query.boolean('conflicts', false);
  const keys = postedKeys(scope) ?? query.jsonArray('keys');
  if (keys !== undefined && (query.has('key') || query.has('startkey') || query.has('endkey'))) {
    throw errors.queryParseError('`keys` is incompatible with `key`, `start_key` and `end_key`');
  }
  return {
    descending,
    skip: query.integer('skip', 0),
    limit: query.integer('limit', Number.MAX_SAFE_INTEGER),
    includeDocs,
    readOptions: {
      ...PLAIN_READ,
      conflicts: includeDocs && conflicts,
      attachments: attachmentOptionsFromQuery(query),
    },
    updateSeq: query.boolean('update_seq', false),
    keys,
    range: keys === undefined ? keyRange(scope, descending) : 'empty',
  };
}

function rowJson(record: DocumentRecord, query: AllDocsQuery): Buffer {
  const rev = formatRev(record.winner);
  const head = `{"id":${JSON.stringify(record.id)},"key":${JSON.stringify(record.id)},"value":`;
  if (record.deleted) {
    const value = `{"rev":${JSON.stringify(rev)},"deleted":true}`;
    return Buffer.from(`${head}${value}${query.includeDocs ? ',"doc":null' : ''}}`);
  }
  const value = `{"rev":${JSON.stringify(rev)}}`;
  if (!query.includeDocs) return Buffer.from(`${head}${value}}`);
  const doc = renderWinner(record, query.readOptions).bytes;
  return Buffer.concat([Buffer.from(`${head}${value},"doc":`), doc, Buffer.from('}')]);
}

function keyRows(snapshot: DatabaseSnapshot, query: AllDocsQuery, keys: RawJsonValue[]): Buffer[] {
  const ordered = query.descending ? keys.slice().reverse() : keys;
  return ordered.slice(query.skip, query.skip + query.limit).map((key) => {
    const record = typeof key.value === 'string' ? snapshot.document(key.value) : null;
    if (record === null) {
      return Buffer.concat([Buffer.from('{"key":'), key.raw, Buffer.from(',"error":"not_found"}')]);
    }
    return rowJson(record, query);
  });
}

function rangeRows(snapshot: DatabaseSnapshot, query: AllDocsQuery, range: IdRange): Buffer[] {
  const rows: Buffer[] = [];
  let skipped = 0;
  for (const record of snapshot.documents(range)) {
    if (rows.length >= query.limit) break;
    if (skipped < query.skip) {
      skipped++;
      continue;
    }
    rows.push(rowJson(record, query));
  }
  return rows;
}

export async function handleAllDocs(scope: RequestScope, db: string): Promise<void> {
  const query = parseAllDocsQuery(scope);
  const body = await withSnapshot(scope, db, (snapshot) => {
    const info = snapshot.info();
    let rows: Buffer[] = [];
    let offset: number | null = null;
    if (query.keys !== undefined) {
      rows = keyRows(snapshot, query, query.keys);
    } else if (query.range !== 'empty') {
      const range = query.range;
      const before: IdRange = {
        endId: range.startId,
        inclusiveEnd: false,
        descending: range.descending,
      };
      offset = (range.startId === undefined ? 0 : snapshot.countDocuments(before)) + query.skip;
      rows = rangeRows(snapshot, query, range);
    } else {
      offset = info.docCount;
    }
    const seq = query.updateSeq ? `,"update_seq":${JSON.stringify(info.updateSeq)}` : '';
    const head = `{"total_rows":${info.docCount},"offset":${JSON.stringify(offset)}${seq},"rows":[`;
    const parts: Buffer[] = [Buffer.from(head)];
    rows.forEach((row, index) => {
      parts.push(Buffer.from(index === 0 ? '\r\n' : ROW_SEPARATOR), row);
    });
    parts.push(Buffer.from(rows.length > 0 ? '\r\n]}' : ']}'));
    return Buffer.concat(parts);
  });
  scope.sendJsonBytes(200, body);
}
