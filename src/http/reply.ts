/**
 * Sending CouchDB responses through fastify: JSON bodies written as bytes (fastify's own
 * serializer never sees a document), with `Content-Type: application/json` and
 * `Cache-Control: must-revalidate` on every JSON reply, a newline after the body as CouchDB
 * writes it, and errors as `{"error": ..., "reason": ...}`.
 */
import type { FastifyReply } from 'fastify';
import type { CouchError } from '../util/couch-error.js';

export const JSON_CONTENT_TYPE = 'application/json';
const NEWLINE = Buffer.from('\n');

export type Headers = Readonly<Record<string, string>>;

/** Sends `bytes` (one JSON value) as the body, followed by a newline. */
export function sendJsonBytes(
  reply: FastifyReply,
  status: number,
  bytes: Buffer | string,
  headers: Headers = {},
): void {
  const body = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  reply
    .code(status)
    .headers(headers)
    .header('content-type', JSON_CONTENT_TYPE)
    .header('cache-control', 'must-revalidate')
    .send(Buffer.concat([body, NEWLINE]));
}

/** Sends a value that holds no document body, encoded with `JSON.stringify`. */
export function sendJson(
  reply: FastifyReply,
  status: number,
  value: unknown,
  headers: Headers = {},
): void {
  sendJsonBytes(reply, status, JSON.stringify(value), headers);
}

/** Sends a CouchDB error. */
export function sendError(reply: FastifyReply, error: CouchError, headers: Headers = {}): void {
  sendJson(reply, error.status, error.toJSON(), headers);
}
