/**
 * `createHttpServer`: the fastify instance that serves CouchDB's HTTP API over an
 * `HttpBackend`.
 *
 * Request lifecycle:
 * 1. `onRequest`: assign the request id (10 hex digits, CouchDB's nonce length) and send it as
 *    `X-Couch-Request-ID`. Reject a request target longer than `maxUrlBytes` (414), parse the
 *    path and check credentials (401 unless public or a server admin). This runs before the
 *    body is read, so an unauthenticated upload is never buffered.
 * 2. Body: every content type is read as raw bytes up to `maxRequestBodyBytes` (413 past it);
 *    nothing is parsed by fastify.
 * 3. Handler: the router (router.ts) and route modules; errors are `CouchError`s.
 * 4. `onResponse`: one log line at info with request id, method, path, status, duration, user
 *    and database.
 *
 * Errors: a `CouchError` is sent with its status and body, and fastify's own errors (body too
 * large, bad content-type header) are mapped to CouchDB's. Anything else is a bug, so it is
 * logged with its stack and the reply is a 500 with a generic reason. Malformed requests
 * that Node rejects before fastify (oversized headers, bad request lines) get a JSON error
 * written on the socket.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { CompressionOptions } from '../document/attachments.js';
import { CouchError, errors, isCouchError } from '../util/couch-error.js';
import { type Logger, silentLogger } from '../util/log.js';
import { AdminAuthenticator, type AdminCredential, type AuthenticatorOptions } from './auth.js';
import type { HttpBackend } from './backend.js';
import { type RequestFacts, RequestScope, type ServerContext } from './context.js';
import { type HttpLimits, resolveLimits } from './limits.js';
import { sendError } from './reply.js';
import { isValidDatabaseName, parseRequestTarget, type RequestTarget } from './request-target.js';
import { type Access, requiredAccess, route } from './router.js';

const REQUEST_ID_BYTES = 5;
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
/** Methods routed besides fastify's defaults; others reach the not-found handler. */
const EXTRA_METHODS = ['COPY'];
const ROUTED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'COPY', 'OPTIONS', 'PATCH'];

const NOT_SERVER_ADMIN = 'You are not a server admin.';
const NOT_DATABASE_MEMBER = 'You are not authorized to access this db.';
const WRONG_CREDENTIALS = 'Name or password is incorrect.';

export interface HttpServerOptions {
  readonly backend: HttpBackend;
  /** Server admins with stored PBKDF2 hashes (see auth.ts `hashPassword`). */
  readonly admins: readonly AdminCredential[];
  /** Overrides of the default limits (limits.ts). */
  readonly limits?: Partial<HttpLimits>;
  readonly logger?: Logger;
  /** Divan's version for `GET /`; `0.0.0` when absent. */
  readonly version?: string;
  readonly auth?: AuthenticatorOptions;
  /** Which attachments are stored gzipped; CouchDB's defaults when absent. */
  readonly attachmentCompression?: CompressionOptions;
}

interface RequestState {
  target: RequestTarget;
  facts: RequestFacts;
}

/** Per-request state, set in `onRequest` and read by the handler and the log line. */
const requestStates = new WeakMap<FastifyRequest, RequestState>();

/**
 * Request targets as sent. Every request is rewritten to `/` before fastify routes it, so
 * fastify never decodes a path. Paths are decoded segment by segment here instead, where an
 * invalid escape or invalid UTF-8 gets CouchDB's error for the name it is in.
 */
const originalUrls = new WeakMap<IncomingMessage, string>();

function originalUrl(request: FastifyRequest): string {
  return originalUrls.get(request.raw) ?? request.raw.url ?? '/';
}

function newRequestId(): string {
  return randomBytes(REQUEST_ID_BYTES).toString('hex');
}

/** Maps an error that is not a `CouchError` to one; null when it is a bug. */
function fastifyErrorToCouch(error: FastifyError): CouchError | null {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errors.requestTooLarge();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errors.badRequest(error.message);
    default:
      break;
  }
  const status = error.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new CouchError(status, 'bad_request', error.message);
  }
  return null;
}

function unauthorized(access: Access, rejected: boolean): CouchError {
  if (rejected) return errors.unauthorized(WRONG_CREDENTIALS);
  return errors.unauthorized(access === 'database' ? NOT_DATABASE_MEMBER : NOT_SERVER_ADMIN);
}

/** Writes a JSON error straight to a socket, for requests Node rejects before fastify. */
function writeSocketError(socket: Socket, status: number, reason: string, error: CouchError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${JSON.stringify(error.toJSON())}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\n` +
      `Cache-Control: must-revalidate\r\nX-Couch-Request-ID: ${newRequestId()}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

function handleClientError(error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    writeSocketError(socket, 431, 'Request Header Fields Too Large', errors.headersTooLarge());
    return;
  }
  if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    socket.destroy();
    return;
  }
  writeSocketError(socket, 400, 'Bad Request', errors.badRequest('Malformed HTTP request.'));
}

/** Creates the fastify server; call `listen` (or `inject` in tests) on the result. */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const limits = resolveLimits(options.limits);
  const logger = options.logger ?? silentLogger;
  const context: ServerContext = {
    backend: options.backend,
    limits,
    log: logger,
    version: options.version ?? '0.0.0',
    attachmentCompression: options.attachmentCompression ?? {},
  };
  const authenticator = new AdminAuthenticator(options.admins, options.auth);

  const fastify = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: newRequestId,
    requestIdHeader: false,
    bodyLimit: limits.maxRequestBodyBytes,
    rewriteUrl: (raw) => {
      originalUrls.set(raw, raw.url ?? '/');
      return '/';
    },
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: 0,
    forceCloseConnections: true,
    exposeHeadRoutes: false,
    return503OnClosing: true,
    http: { maxHeaderSize: limits.maxHeaderBytes },
    clientErrorHandler: handleClientError,
    frameworkErrors: (error, _request, reply) => {
      reply.header('x-couch-request-id', newRequestId());
      sendError(reply, fastifyErrorToCouch(error) ?? errors.badRequest(error.message));
    },
  });
  for (const method of EXTRA_METHODS) fastify.addHttpMethod(method, { hasBody: false });

  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, body);
  });

  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-couch-request-id', request.id);
    const url = originalUrl(request);
    if (Buffer.byteLength(url) > limits.maxUrlBytes) throw errors.uriTooLong();
    const target = parseRequestTarget(url);
    const first = target.segments[0]?.text;
    const db = first !== undefined && isValidDatabaseName(first) ? first : null;
    const facts: RequestFacts = { user: null, db };
    requestStates.set(request, { target, facts });

    const access = requiredAccess(target.segments, request.method);
    if (access === 'public') return;
    const outcome = await authenticator.authenticate(request.headers.authorization);
    if (outcome.kind === 'admin') {
      facts.user = outcome.name;
      return;
    }
    const challenge = request.headers['x-couchdb-www-authenticate'];
    if (typeof challenge === 'string') reply.header('www-authenticate', challenge);
    throw unauthorized(access, outcome.kind === 'rejected');
  });

  fastify.addHook('onResponse', async (request, reply) => {
    const state = requestStates.get(request);
    request.log.info(
      {
        method: request.method,
        path: state?.target.rawPath ?? originalUrl(request),
        status: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 1000) / 1000,
        user: state?.facts.user ?? null,
        db: state?.facts.db ?? null,
      },
      'request',
    );
  });

  fastify.setErrorHandler((error: FastifyError, request, reply) => {
    const couchError = isCouchError(error) ? error : fastifyErrorToCouch(error);
    if (couchError !== null) {
      sendError(reply, couchError);
      return;
    }
    request.log.error({ err: error }, 'request failed with an unexpected error');
    sendError(reply, errors.internal());
  });

  const handler = async (request: FastifyRequest, reply: FastifyReply) => {
    const state = requestStates.get(request);
    if (state === undefined) throw new Error('request state missing: onRequest did not run');
    await route(new RequestScope(context, request, reply, state.target, state.facts));
  };
  fastify.route({ method: ROUTED_METHODS, url: '/', handler });
  fastify.setNotFoundHandler(handler);
  return fastify;
}
