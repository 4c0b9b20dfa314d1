/**
 * The per-request view that route handlers work with: the parsed target and query, the raw
 * body bytes, the caller, the server-wide settings (backend, limits, logger), and helpers for what every
 * route repeats: the content-type check of POST routes, the read consistency, body parsing
 * with the configured limits, and JSON replies.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { CompressionOptions } from '../document/attachments.js';
import { type ScannedValue, scanJson, scanObject } from '../document/json.js';
import type { UserContext } from '../security/access.js';
import { errors } from '../util/couch-error.js';
import type { Logger } from '../util/log.js';
import type { Authenticator } from './auth.js';
import type { Consistency, HttpBackend } from './backend.js';
import { authorizingBackend, type Identity, type SecuritySettings } from './gate.js';
import type { HttpLimits } from './limits.js';
import { QueryParams } from './query.js';
import { type Headers, sendJson, sendJsonBytes } from './reply.js';
import type { RequestTarget } from './request-target.js';

/** Settings shared by every request of one server. */
export interface ServerContext {
  readonly backend: HttpBackend;
  readonly limits: HttpLimits;
  readonly log: Logger;
  /** Divan's version, reported by `GET /`. */
  readonly version: string;
  /** Which attachments are stored gzipped (CouchDB's `compressible_types`). */
  readonly attachmentCompression: CompressionOptions;
  readonly authenticator: Authenticator;
  readonly security: SecuritySettings;
}

/** What the request log line reports besides method, path and status. */
export interface RequestFacts {
  user: string | null;
  db: string | null;
}

const EMPTY_BODY = Buffer.alloc(0);

export class RequestScope {
  readonly query: QueryParams;

  constructor(
    readonly server: ServerContext,
    readonly request: FastifyRequest,
    readonly reply: FastifyReply,
    readonly target: RequestTarget,
    readonly facts: RequestFacts,
    readonly identity: Identity,
  ) {
    this.query = new QueryParams(target.query, server.limits.maxJsonDepth);
    this.backend = authorizingBackend(server.backend, identity.user, server.security);
  }

  /** The backend, with every write authorized as the caller (see gate.ts). */
  readonly backend: HttpBackend;

  get user(): UserContext {
    return this.identity.user;
  }

  get limits(): HttpLimits {
    return this.server.limits;
  }

  get method(): string {
    return this.request.method;
  }

  header(name: string): string | undefined {
    const value = this.request.headers[name.toLowerCase()];
    return Array.isArray(value) ? value[0] : value;
  }

  /** The raw request body; empty when there is none. */
  body(): Buffer {
    const body = this.request.body;
    return Buffer.isBuffer(body) ? body : EMPTY_BODY;
  }

  /** Raises 415 `bad_content_type` unless the request says its body is JSON. */
  requireJsonContentType(): void {
    const type = this.header('content-type');
    if (type === undefined || !type.trim().toLowerCase().startsWith('application/json')) {
      throw errors.badContentType();
    }
  }

  /** The body as one validated JSON value. */
  jsonBody(): ScannedValue {
    return scanJson(this.body(), { maxDepth: this.limits.maxJsonDepth });
  }

  /** The body as a validated JSON object. */
  jsonObjectBody(): ScannedValue {
    return scanObject(this.body(), { maxDepth: this.limits.maxJsonDepth });
  }

  /** `stale` when `stable=false` or `stale=ok` (or `update_after`), else `linearizable`. */
  consistency(): Consistency {
    const stable = this.query.string('stable');
    const stale = this.query.string('stale');
    if (stable === 'false' || stale === 'ok' || stale === 'update_after') return 'stale';
    return 'linearizable';
  }

  /** The `http://host` (or `https://`) prefix for `Location` headers, from the Host header. */
  origin(): string {
    const host = this.header('host') ?? 'localhost';
    return `${this.request.protocol}://${host}`;
  }

  sendJson(status: number, value: unknown, headers?: Headers): void {
    sendJson(this.reply, status, value, headers);
  }

  sendJsonBytes(status: number, bytes: Buffer | string, headers?: Headers): void {
    sendJsonBytes(this.reply, status, bytes, headers);
  }
}
