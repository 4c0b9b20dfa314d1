/**
 * MIME multipart bodies as CouchDB 3.x reads and writes them (RFC 2046 framing):
 *
 * - `parseMultipart` reads a request body, `multipart/related` for a document PUT whose
 *   attachments follow the JSON as parts;
 * - `MultipartWriter` builds a response: `multipart/related` (one document and its
 *   attachments), `multipart/mixed` (several documents, for `open_revs` and `_bulk_get`) and
 *   `multipart/byteranges` (several ranges of one attachment).
 *
 * A part is its headers, a blank line and its bytes; parts are separated by `--boundary`
 * lines and the last is followed by `--boundary--`. Parsing scans for the delimiter, so a
 * part's bytes must not contain `\r\n--boundary`, which is what a boundary is chosen for.
 * Bodies are held in memory, whole: the request body limit bounds them.
 */
import { randomBytes } from 'node:crypto';
import { errors } from '../util/couch-error.js';

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');
const DASH_DASH = Buffer.from('--');
const BOUNDARY_BYTES = 16;
/** RFC 2046: a boundary is 1 to 70 characters. */
const MAX_BOUNDARY_LENGTH = 70;

/** One part of a multipart body. */
export interface MultipartPart {
  /** Header names in lower case. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Buffer;
}

/** Reads a parameter (`boundary`, `filename`) of a header value, quoted or not. */
export function headerParameter(value: string, name: string): string | null {
  const pattern = new RegExp(
    `(?:^|;)\\s*${name}\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;\\s]+))`,
    'i',
  );
  const match = pattern.exec(value);
  if (match === null) return null;
  return match[1] !== undefined ? match[1].replace(/\\(.)/g, '$1') : match[2]!;
}

/** The media type of a Content-Type value, lower case, without parameters. */
export function mediaType(value: string | undefined): string {
  return (value ?? '').split(';', 1)[0]!.trim().toLowerCase();
}

function parseHeaders(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of text.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw errors.badRequest(`Invalid header line in a multipart body: ${line}`);
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

/**
 * Splits a multipart body into its parts. Raises 400 `bad_request` when the content type has
 * no boundary or the body is not framed by it.
 */
export function parseMultipart(body: Buffer, contentType: string): MultipartPart[] {
  const boundary = headerParameter(contentType, 'boundary');
  if (boundary === null || boundary.length === 0 || boundary.length > MAX_BOUNDARY_LENGTH) {
    throw errors.badRequest('The multipart Content-Type has no valid boundary.');
  }
  const delimiter = Buffer.from(`--${boundary}`);
  const separator = Buffer.concat([CRLF, delimiter]);
  let position = 0;
  if (!body.subarray(0, delimiter.length).equals(delimiter)) {
    // A preamble before the first boundary is allowed and ignored.
    const first = body.indexOf(separator);
    if (first < 0) throw errors.badRequest('The multipart body does not contain its boundary.');
    position = first + CRLF.length;
  }
  const parts: MultipartPart[] = [];
  for (;;) {
    position += delimiter.length;
    if (body.subarray(position, position + DASH_DASH.length).equals(DASH_DASH)) return parts;
    if (!body.subarray(position, position + CRLF.length).equals(CRLF)) {
      throw errors.badRequest('A multipart boundary is not followed by a line break.');
    }
    position += CRLF.length;
    const next = body.indexOf(separator, position);
    if (next < 0) throw errors.badRequest('The multipart body has no closing boundary.');
    parts.push(parsePart(body.subarray(position, next)));
    position = next + CRLF.length;
  }
}

function parsePart(bytes: Buffer): MultipartPart {
  if (bytes.subarray(0, CRLF.length).equals(CRLF)) {
    return { headers: new Map(), body: bytes.subarray(CRLF.length) };
  }
  const end = bytes.indexOf(HEADER_END);
  if (end < 0) throw errors.badRequest('A multipart part has no end of headers.');
  const headers = parseHeaders(bytes.subarray(0, end).toString('latin1'));
  return { headers, body: bytes.subarray(end + HEADER_END.length) };
}

/** A random boundary of hex digits, as CouchDB's are. */
export function newBoundary(): string {
  return randomBytes(BOUNDARY_BYTES).toString('hex');
}

/** Builds a multipart body part by part. */
export class MultipartWriter {
  readonly boundary: string;
  readonly #chunks: Buffer[] = [];

  constructor(boundary: string = newBoundary()) {
    this.boundary = boundary;
  }

  /** The Content-Type of the body for a `multipart/<subtype>`. */
  contentType(subtype: 'related' | 'mixed' | 'byteranges'): string {
    return `multipart/${subtype}; boundary="${this.boundary}"`;
  }

  /** Adds a part with `headers` (names as they are sent) and `body`. */
  part(headers: ReadonlyArray<readonly [string, string]>, body: Buffer | string): this {
    const head = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
    this.#chunks.push(Buffer.from(`--${this.boundary}\r\n${head}\r\n`));
    this.#chunks.push(typeof body === 'string' ? Buffer.from(body) : body);
    this.#chunks.push(CRLF);
    return this;
  }

  /** Returns the body with its closing boundary. */
  finish(): Buffer {
    return Buffer.concat([...this.#chunks, Buffer.from(`--${this.boundary}--`)]);
  }
}

/** Quotes a file name for a `Content-Disposition` header. */
export function quotedFilename(name: string): string {
  return `"${name.replace(/["\\]/g, '\\$&')}"`;
}
