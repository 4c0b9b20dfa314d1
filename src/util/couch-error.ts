/**
 * The catalog of errors a client can see, with CouchDB 3.x's status codes, error names and
 * reasons. Every layer that rejects input raises one of these; the HTTP layer turns it into
 * `{"error": ..., "reason": ...}` with its status. Anything else that escapes is a bug and
 * becomes a 500.
 */

export class CouchError extends Error {
  override readonly name = 'CouchError';

  constructor(
    readonly status: number,
    readonly error: string,
    readonly reason: string,
  ) {
    super(`${error}: ${reason}`);
  }

  /** The JSON body CouchDB sends for this error. */
  toJSON(): { error: string; reason: string } {
    return { error: this.error, reason: this.reason };
  }
}

export function isCouchError(value: unknown): value is CouchError {
  return value instanceof CouchError;
}

export const errors = {
  badRequest: (reason: string) => new CouchError(400, 'bad_request', reason),
  invalidJson: () => new CouchError(400, 'bad_request', 'invalid UTF-8 JSON'),
  notAnObject: () => new CouchError(400, 'bad_request', 'Document must be a JSON object'),
  invalidRev: () => new CouchError(400, 'bad_request', 'Invalid rev format'),
  bulkDocsMissingDocs: () =>
    new CouchError(400, 'bad_request', 'POST body must include `docs` parameter.'),
  bulkGetMissingDocs: () => new CouchError(400, 'bad_request', "Missing JSON list of 'docs'."),
  illegalDocId: (reason: string) => new CouchError(400, 'illegal_docid', reason),
  reservedDocId: () =>
    new CouchError(400, 'illegal_docid', 'Only reserved document ids may start with underscore.'),
  badSpecialMember: (member: string) =>
    new CouchError(400, 'doc_validation', `Bad special document member: ${member}`),
  docValidation: (reason: string) => new CouchError(400, 'doc_validation', reason),
  illegalDatabaseName: (name: string) =>
    new CouchError(
      400,
      'illegal_database_name',
      `Name: '${name}'. Only lowercase characters (a-z), digits (0-9), and any of the characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.`,
    ),
  unauthorized: (reason = 'You are not authorized to access this db.') =>
    new CouchError(401, 'unauthorized', reason),
  forbidden: (reason: string) => new CouchError(403, 'forbidden', reason),
  dbNotFound: () => new CouchError(404, 'not_found', 'Database does not exist.'),
  docNotFound: (reason: 'missing' | 'deleted' = 'missing') =>
    new CouchError(404, 'not_found', reason),
  notFound: (reason: string) => new CouchError(404, 'not_found', reason),
  methodNotAllowed: (allowed: string) =>
    new CouchError(405, 'method_not_allowed', `Only ${allowed} allowed`),
  conflict: () => new CouchError(409, 'conflict', 'Document update conflict.'),
  dbExists: () =>
    new CouchError(
      412,
      'file_exists',
      'The database could not be created, the file already exists.',
    ),
  missingStub: (reason: string) => new CouchError(412, 'missing_stub', reason),
  documentTooLarge: (id: string) => new CouchError(413, 'document_too_large', id),
  requestTooLarge: () => new CouchError(413, 'too_large', 'the request entity is too large'),
  badContentType: () =>
    new CouchError(415, 'bad_content_type', 'Content-Type must be application/json'),
  unknownOutcome: (reason: string) => new CouchError(503, 'unknown_outcome', reason),
  unavailable: (reason: string) => new CouchError(503, 'service_unavailable', reason),
  jsonTooDeep: (maxDepth: number) =>
    new CouchError(400, 'bad_request', `JSON nesting is deeper than the maximum of ${maxDepth}`),
  replicatedDocWithoutRev: () =>
    new CouchError(
      400,
      'bad_request',
      'When `new_edits: false`, the document needs `_rev` or `_revisions` specified',
    ),
  selectorMissing: () =>
    new CouchError(400, 'bad_request', 'Selector must be specified in POST payload'),
  selectorNotObject: () =>
    new CouchError(400, 'bad_request', 'Selector error: expected a JSON object'),
  invalidSelector: (reason: string) => new CouchError(400, 'bad_request', reason),
  queryParseError: (reason: string) => new CouchError(400, 'query_parse_error', reason),
  invalidSinceSeq: (reason: string) => new CouchError(400, 'invalid_since_seq', reason),
  bulkDocsCountExceeded: (max: number) =>
    new CouchError(413, 'max_bulk_docs_count_exceeded', String(max)),
  bulkGetCountExceeded: (max: number) =>
    new CouchError(413, 'max_bulk_get_count_exceeded', String(max)),
  uriTooLong: () => new CouchError(414, 'too_long', 'the request uri is too long'),
  headersTooLarge: () =>
    new CouchError(431, 'too_large', 'the request line and headers are too large'),
  notImplemented: (reason: string) => new CouchError(501, 'not_implemented', reason),
  /** A bug or an unexpected failure; the details go to the log, never to the client. */
  internal: () =>
    new CouchError(500, 'unknown_error', 'The request failed unexpectedly; see the server log.'),
} as const;
