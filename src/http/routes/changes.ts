/**
 * `GET` and `POST /{db}/_changes` with CouchDB 3.x's feeds and byte layouts:
 *
 * - normal and longpoll: `{"results":[` and a newline, the rows separated by `,\r\n`, then
 *   a newline, `],`, a newline and `"last_seq":S,"pending":N}` and a newline. A longpoll with
 *   nothing to report yet sends one newline when it starts waiting, a newline per heartbeat,
 *   and ends at the first matching change or at `timeout`;
 * - continuous: one row per line, a newline per heartbeat, and a last line
 *   `{"last_seq":S,"pending":N}` when the feed ends (limit reached or timeout);
 * - eventsource: `data: <row>` and `id: <seq>` lines, a blank line after each event,
 *   `event: heartbeat` events, and no closing line.
 *
 * Timing: `heartbeat=N` (or `true`, 60 s) keeps the connection alive while waiting. `timeout`
 * ends a waiting feed after N ms. Without a heartbeat, a waiting feed ends after
 * `timeout` or 60 s, as in CouchDB. With a heartbeat and no `timeout` it waits until a
 * change comes (longpoll) or the client leaves (continuous). NOTE: CouchDB ignores `timeout`
 * when `heartbeat` is given; Divan honours both, so a client that sets both gets an end.
 *
 * Rows: `{"seq","id","changes":[{"rev"}],"deleted":true?,"doc"?}`; `style=all_docs` lists every
 * leaf, winner first; `include_docs` adds the winning revision (`conflicts=true` adds its
 * `_conflicts`). `seq_interval=N` writes the sequence only on every Nth row (null elsewhere).
 * Filters: `_doc_ids` (query `doc_ids` or body `doc_ids`), `_selector` (body `selector`),
 * `_design`. Filter functions and `_view` need JavaScript, which Divan does not run.
 */

import { decodeMember } from '../../document/json.js';
import { formatRev } from '../../document/rev.js';
import { sortedLeaves } from '../../document/rev-tree-query.js';
import { compileSelector, type Selector } from '../../document/selector.js';
import { errors, isCouchError } from '../../util/couch-error.js';
import type { ChangesSince, DatabaseSnapshot, DocumentRecord, Seq } from '../backend.js';
import type { RequestScope } from '../context.js';
import {
  attachmentOptionsFromQuery,
  PLAIN_READ,
  type ReadOptions,
  renderWinner,
} from '../document-read.js';
import { ResponseStream } from '../response-stream.js';

/** CouchDB's default `changes_timeout` and `heartbeat=true` interval, in milliseconds. */
const DEFAULT_TIMEOUT_MS = 60_000;

type Feed = 'normal' | 'longpoll' | 'continuous' | 'eventsource';

interface ChangesQuery {
  readonly feed: Feed;
  readonly since: ChangesSince;
  readonly limit: number;
  readonly descending: boolean;
  readonly allDocsStyle: boolean;
  readonly includeDocs: boolean;
  readonly readOptions: ReadOptions;
  readonly heartbeatMs: number | null;
  /** When a waiting feed ends, or null to wait without end. */
  readonly timeoutMs: number | null;
  readonly seqInterval: number | null;
  readonly filter: ChangesFilter;
}

/** A row filter; `needsDoc` when it reads the document's winning revision. */
interface ChangesFilter {
  readonly needsDoc: boolean;
  accepts(record: DocumentRecord, doc: unknown): boolean;
}

const ALL_CHANGES: ChangesFilter = { needsDoc: false, accepts: () => true };

function parseFeed(value: string | undefined): Feed {
  if (value === undefined || value === 'normal') return 'normal';
  if (value === 'longpoll' || value === 'continuous' || value === 'eventsource') return value;
  if (value === 'live') return 'continuous';
  throw errors.badRequest(
    'Supported `feed` types: normal, continuous, live, longpoll, eventsource',
  );
}

function parseSince(scope: RequestScope, feed: Feed): ChangesSince {
  const lastEventId = feed === 'eventsource' ? scope.header('last-event-id') : undefined;
  const text = lastEventId ?? scope.query.string('since');
  if (text === undefined || text === '0') return { kind: 'start' };
  if (text === 'now') return { kind: 'now' };
  const unquoted = text.startsWith('"') && text.endsWith('"') ? text.slice(1, -1) : text;
  return { kind: 'after', seq: unquoted };
}

function parseHeartbeat(scope: RequestScope): number | null {
  const value = scope.query.string('heartbeat');
  if (value === undefined || value === 'false') return null;
  if (value === 'true') return DEFAULT_TIMEOUT_MS;
  const heartbeat = scope.query.integer('heartbeat', DEFAULT_TIMEOUT_MS);
  if (heartbeat < 1) throw errors.queryParseError('heartbeat must be a positive integer');
  return heartbeat;
}

/** Reads the `doc_ids` and `selector` members of a POST body; empty for other requests. */
function bodyMembers(scope: RequestScope): Record<string, unknown> {
  if (scope.method !== 'POST' || scope.body().length === 0) return {};
  scope.requireJsonContentType();
  const body = scope.jsonObjectBody();
  const members: Record<string, unknown> = Object.create(null);
  for (const member of body.members) {
    if (member.key === 'doc_ids' || member.key === 'selector') {
      members[member.key] = decodeMember(body, member);
    }
  }
  return members;
}

function docIdsFilter(scope: RequestScope, body: Record<string, unknown>): ChangesFilter {
  const ids = body.doc_ids ?? scope.query.json('doc_ids')?.value;
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw errors.badRequest('`doc_ids` filter parameter is not a list of doc ids.');
  }
  const requested = new Set(ids as string[]);
  return { needsDoc: false, accepts: (record) => requested.has(record.id) };
}

function selectorFilter(body: Record<string, unknown>): ChangesFilter {
  if (!('selector' in body)) throw errors.selectorMissing();
  const selector: Selector = compileSelector(body.selector);
  return { needsDoc: true, accepts: (_record, doc) => selector.matches(doc) };
}

function parseFilter(scope: RequestScope, body: Record<string, unknown>): ChangesFilter {
  const name = scope.query.string('filter');
  if (name === undefined || name === '') return ALL_CHANGES;
  if (name === '_doc_ids') return docIdsFilter(scope, body);
  if (name === '_selector') return selectorFilter(body);
  if (name === '_design') {
    return { needsDoc: false, accepts: (record) => record.id.startsWith('_design/') };
  }
  throw errors.badRequest(
    `Filter ${name} is not supported: Divan runs no JavaScript, so only _doc_ids, _selector and _design filters work.`,
  );
}

function parseChangesQuery(scope: RequestScope): ChangesQuery {
  const query = scope.query;
  const feed = parseFeed(query.string('feed'));
  const style = query.string('style') ?? 'main_only';
  if (style !== 'main_only' && style !== 'all_docs') {
    throw errors.badRequest('Supported `style` values: main_only, all_docs');
  }
  const includeDocs = query.boolean('include_docs', false);
  const heartbeatMs = parseHeartbeat(scope);
  const timeoutGiven = query.has('timeout');
  const timeoutMs = timeoutGiven ? query.integer('timeout', DEFAULT_TIMEOUT_MS) : null;
  const seqInterval = query.has('seq_interval') ? query.integer('seq_interval', 1) : null;
  if (seqInterval === 0) throw errors.queryParseError('seq_interval must be a positive integer');
  return {
    feed,
    since: parseSince(scope, feed),
    limit: query.integer('limit', Number.MAX_SAFE_INTEGER),
    descending: query.boolean('descending', false),
    allDocsStyle: style === 'all_docs',
    includeDocs,
    readOptions: {
      ...PLAIN_READ,
      conflicts: includeDocs && query.boolean('conflicts', false),
      attachments: attachmentOptionsFromQuery(query),
    },
    heartbeatMs,
    timeoutMs: timeoutMs ?? (heartbeatMs === null ? DEFAULT_TIMEOUT_MS : null),
    seqInterval,
    filter: parseFilter(scope, bodyMembers(scope)),
  };
}

/** Progress of one feed: rows written and the sequence the feed has reached. */
interface FeedState {
  lastSeq: Seq;
  emitted: number;
}

function rowJson(
  record: DocumentRecord,
  query: ChangesQuery,
  seq: Seq | null,
  doc: Buffer | null,
): Buffer {
  const revs = query.allDocsStyle
    ? sortedLeaves(record.tree()).map((leaf) => leaf.rev)
    : [record.winner];
  const changes = revs.map((rev) => `{"rev":${JSON.stringify(formatRev(rev))}}`).join(',');
  let text = `{"seq":${JSON.stringify(seq)},"id":${JSON.stringify(record.id)},"changes":[${changes}]`;
  if (record.deleted) text += ',"deleted":true';
  if (doc === null) return Buffer.from(`${text}}`);
  return Buffer.concat([Buffer.from(`${text},"doc":`), doc, Buffer.from('}')]);
}

/** Formats and writes the rows of one snapshot; returns whether the limit was reached. */
async function writeRows(
  snapshot: DatabaseSnapshot,
  query: ChangesQuery,
  state: FeedState,
  writeRow: (row: Buffer, seq: Seq) => Promise<void>,
): Promise<boolean> {
  for (const record of snapshot.changes(state.lastSeq, query.descending)) {
    if (state.emitted >= query.limit) return true;
    state.lastSeq = record.seq;
    const needsDoc = query.includeDocs || query.filter.needsDoc;
    const doc = needsDoc ? renderWinner(record, query.readOptions).bytes : null;
    const parsed = query.filter.needsDoc && doc !== null ? JSON.parse(doc.toString('utf8')) : null;
    if (!query.filter.accepts(record, parsed)) continue;
    state.emitted++;
    const showSeq =
      query.seqInterval === null || state.emitted % query.seqInterval === 0 ? record.seq : null;
    await writeRow(rowJson(record, query, showSeq, query.includeDocs ? doc : null), record.seq);
  }
  return state.emitted >= query.limit;
}

/** Runs `read` on a fresh snapshot and closes it. */
async function withFeedSnapshot<T>(
  scope: RequestScope,
  db: string,
  read: (snapshot: DatabaseSnapshot) => Promise<T>,
): Promise<T> {
  const snapshot = await scope.backend.snapshot(db, scope.consistency());
  try {
    return await read(snapshot);
  } finally {
    snapshot.close();
  }
}

/** The layout of one feed type. */
interface FeedWriter {
  readonly start: string;
  row(row: Buffer, seq: Seq, first: boolean): Buffer;
  readonly waiting: string;
  readonly heartbeat: string;
  end(lastSeq: Seq, pending: number): string;
  readonly contentType: string;
}

const NORMAL_WRITER: FeedWriter = {
  start: '{"results":[\n',
  row: (row, _seq, first) => (first ? row : Buffer.concat([Buffer.from(',\r\n'), row])),
  waiting: '\n',
  heartbeat: '\n',
  end: (lastSeq, pending) => `\n],\n"last_seq":${JSON.stringify(lastSeq)},"pending":${pending}}\n`,
  contentType: 'application/json',
};

const CONTINUOUS_WRITER: FeedWriter = {
  start: '',
  row: (row) => Buffer.concat([row, Buffer.from('\n')]),
  waiting: '',
  heartbeat: '\n',
  end: (lastSeq, pending) => `${JSON.stringify({ last_seq: lastSeq, pending })}\n`,
  contentType: 'application/json',
};

const EVENTSOURCE_WRITER: FeedWriter = {
  start: '',
  row: (row, seq) =>
    Buffer.concat([Buffer.from('data: '), row, Buffer.from(`\nid: ${JSON.stringify(seq)}\n\n`)]),
  waiting: '',
  heartbeat: 'event: heartbeat\ndata: \n\n',
  end: () => '',
  contentType: 'text/event-stream',
};

function writerFor(feed: Feed): FeedWriter {
  if (feed === 'continuous') return CONTINUOUS_WRITER;
  if (feed === 'eventsource') return EVENTSOURCE_WRITER;
  return NORMAL_WRITER;
}

export async function handleChanges(scope: RequestScope, db: string): Promise<void> {
  const query = parseChangesQuery(scope);
  const writer = writerFor(query.feed);
  // Read the first snapshot before any byte is sent, so a missing database or a bad `since`
  // still gets an error status.
  const snapshot = await scope.backend.snapshot(db, scope.consistency());
  let stream: ResponseStream;
  const state: FeedState = { lastSeq: '', emitted: 0 };
  try {
    state.lastSeq = snapshot.resolveSince(query.since);
    const headers: Record<string, string> = {
      'content-type': writer.contentType,
      'cache-control': query.feed === 'eventsource' ? 'no-cache' : 'must-revalidate',
    };
    stream = new ResponseStream(scope.reply, 200, headers);
    await stream.write(writer.start);
  } catch (error) {
    snapshot.close();
    throw error;
  }
  try {
    await runFeed(scope, db, query, writer, stream, snapshot, state);
  } catch (error) {
    // Headers are gone; the only honest signal left is an aborted body.
    scope.request.log[isCouchError(error) ? 'info' : 'error'](
      { err: error },
      '_changes feed failed',
    );
    stream.destroy();
  }
}

async function runFeed(
  scope: RequestScope,
  db: string,
  query: ChangesQuery,
  writer: FeedWriter,
  stream: ResponseStream,
  firstSnapshot: DatabaseSnapshot,
  state: FeedState,
): Promise<void> {
  let first = true;
  const writeRow = async (row: Buffer, seq: Seq) => {
    await stream.write(writer.row(row, seq, first));
    first = false;
  };

  let limitReached = false;
  let pending = 0;
  try {
    limitReached = query.limit === 0 || (await writeRows(firstSnapshot, query, state, writeRow));
    pending = firstSnapshot.pendingAfter(state.lastSeq, query.descending);
  } finally {
    firstSnapshot.close();
  }

  const waits = query.feed !== 'normal' && !query.descending && !limitReached;
  if (waits && !(query.feed === 'longpoll' && state.emitted > 0)) {
    const outcome = await waitAndStream(scope, db, query, writer, stream, state, writeRow);
    pending = outcome.pending;
  }
  stream.end(writer.end(state.lastSeq, pending));
}

/**
 * Waits for changes after `state.lastSeq`, writing heartbeats, and streams them. Returns when
 * the feed is done: a longpoll once it wrote a row, any feed at its limit, its timeout, or
 * when the client leaves.
 */
async function waitAndStream(
  scope: RequestScope,
  db: string,
  query: ChangesQuery,
  writer: FeedWriter,
  stream: ResponseStream,
  state: FeedState,
  writeRow: (row: Buffer, seq: Seq) => Promise<void>,
): Promise<{ pending: number }> {
  const deadline = query.timeoutMs === null ? null : Date.now() + query.timeoutMs;
  await stream.write(writer.waiting);
  let pending = 0;
  for (;;) {
    if (stream.aborted) return { pending };
    const remaining = deadline === null ? Number.POSITIVE_INFINITY : deadline - Date.now();
    if (remaining <= 0) return { pending };
    const waitMs = Math.min(remaining, query.heartbeatMs ?? remaining);
    const changed = await scope.backend.waitForChange(db, state.lastSeq, waitMs, stream.signal);
    if (stream.aborted) return { pending };
    if (!changed) {
      if (query.heartbeatMs !== null) await stream.write(writer.heartbeat);
      continue;
    }
    const emittedBefore = state.emitted;
    const limitReached = await withFeedSnapshot(scope, db, async (snapshot) => {
      const reached = await writeRows(snapshot, query, state, writeRow);
      pending = snapshot.pendingAfter(state.lastSeq, false);
      return reached;
    });
    if (limitReached) return { pending };
    if (query.feed === 'longpoll' && state.emitted > emittedBefore) return { pending };
  }
}
