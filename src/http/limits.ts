/**
 * Request limits of the HTTP layer, with CouchDB 3.x's defaults where CouchDB has one and the
 * error it returns when a limit is passed:
 *
 * | limit                | default          | CouchDB setting                    | error            |
 * |----------------------|------------------|------------------------------------|------------------|
 * | maxRequestBodyBytes  | 64 MiB           | httpd/max_http_request_size (4 GiB) | 413 too_large   |
 * | maxDocumentBytes     | 8,000,000        | couchdb/max_document_size          | 413 document_too_large |
 * | maxDocIdBytes        | unlimited (0)    | couchdb/max_document_id_length     | 400 illegal_docid |
 * | maxJsonDepth         | 256              | none (jiffy has no limit)          | 400 bad_request  |
 * | maxBulkDocs          | 10,000           | couchdb/max_bulk_docs_count        | 413 max_bulk_docs_count_exceeded |
 * | maxBulkGet           | 10,000           | couchdb/max_bulk_get_count         | 413 max_bulk_get_count_exceeded |
 * | maxPurgeDocs         | 100              | purge/max_document_id_number       | 400 bad_request  |
 * | maxPurgeRevs         | 1,000            | purge/max_revisions_number         | 400 bad_request  |
 * | maxUuidCount         | 1,000            | uuids/max_count                    | 400 bad_request  |
 * | maxUrlBytes          | 64 KiB           | none (mochiweb's line limit)       | 414 too_long     |
 * | maxHeaderBytes       | 80 KiB           | none                               | 431              |
 * | maxFeedsPerCaller    | 100              | none                               | 429 too_many_requests |
 * | requestTimeoutMs     | 300,000          | none                               | connection closed |
 * | headersTimeoutMs     | 60,000           | none                               | connection closed |
 *
 * The two timeouts bound how long a client may take to send a request: its headers, and the
 * whole request with its body (Node's `headersTimeout` and `requestTimeout`, with Node 20's
 * defaults). They do not bound a response, so open `_changes` feeds are not cut.
 *
 * The request body default is Divan's own: a request is one Raft log entry, and the peer
 * transport carries an entry of that size in one frame.
 */
import { DEFAULT_MAX_DOCUMENT_SIZE } from '../document/document.js';
import { DEFAULT_MAX_JSON_DEPTH } from '../document/json.js';
import { assert } from '../util/assert.js';
import { DEFAULT_MAX_FEEDS_PER_CALLER } from './feed-limiter.js';

const MIB = 1024 * 1024;
const KIB = 1024;

export interface HttpLimits {
  /** Maximum request body in bytes. */
  readonly maxRequestBodyBytes: number;
  /** Maximum stored document body in bytes. */
  readonly maxDocumentBytes: number;
  /** Maximum document id in UTF-8 bytes; 0 means unlimited. */
  readonly maxDocIdBytes: number;
  /** Maximum nesting depth of JSON objects and arrays in a body. */
  readonly maxJsonDepth: number;
  /** Maximum documents in one `_bulk_docs` request. */
  readonly maxBulkDocs: number;
  /** Maximum documents in one `_bulk_get` request. */
  readonly maxBulkGet: number;
  /** Maximum documents in one `_purge` request. */
  readonly maxPurgeDocs: number;
  /** Maximum revisions, over all documents, in one `_purge` request. */
  readonly maxPurgeRevs: number;
  /** Maximum `count` of `/_uuids`. */
  readonly maxUuidCount: number;
  /** Maximum request target (path and query) in bytes. */
  readonly maxUrlBytes: number;
  /** Maximum size of the request line and headers together, in bytes (Node's maxHeaderSize). */
  readonly maxHeaderBytes: number;
  /** Maximum open waiting `_changes` feeds per user (per IP address when anonymous). */
  readonly maxFeedsPerCaller: number;
  /** Time a client has to send a whole request, in milliseconds; 0 means no limit. */
  readonly requestTimeoutMs: number;
  /** Time a client has to send the request line and headers, in milliseconds. */
  readonly headersTimeoutMs: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = Object.freeze({
  maxRequestBodyBytes: 64 * MIB,
  maxDocumentBytes: DEFAULT_MAX_DOCUMENT_SIZE,
  maxDocIdBytes: 0,
  maxJsonDepth: DEFAULT_MAX_JSON_DEPTH,
  maxBulkDocs: 10_000,
  maxBulkGet: 10_000,
  maxPurgeDocs: 100,
  maxPurgeRevs: 1_000,
  maxUuidCount: 1_000,
  maxUrlBytes: 64 * KIB,
  maxHeaderBytes: 80 * KIB,
  maxFeedsPerCaller: DEFAULT_MAX_FEEDS_PER_CALLER,
  requestTimeoutMs: 300_000,
  headersTimeoutMs: 60_000,
});

/** Returns the defaults with `overrides` applied, after checking every value. */
export function resolveLimits(overrides: Partial<HttpLimits> = {}): HttpLimits {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...overrides };
  for (const [name, value] of Object.entries(limits)) {
    assert(Number.isSafeInteger(value) && value >= 0, () => `limit ${name} is ${value}`);
  }
  assert(limits.maxJsonDepth >= 1, 'maxJsonDepth must allow a top-level object');
  assert(limits.maxRequestBodyBytes >= 1, 'maxRequestBodyBytes must be positive');
  assert(
    limits.maxUrlBytes < limits.maxHeaderBytes,
    'maxUrlBytes must be below maxHeaderBytes, which includes the request line',
  );
  assert(limits.maxFeedsPerCaller >= 1, 'maxFeedsPerCaller must allow one feed');
  assert(limits.headersTimeoutMs >= 1, 'headersTimeoutMs must be positive');
  assert(
    limits.requestTimeoutMs === 0 || limits.headersTimeoutMs <= limits.requestTimeoutMs,
    'headersTimeoutMs must not exceed requestTimeoutMs',
  );
  return limits;
}
