/**
 * `createHttpServer`: the fastify instance that serves CouchDB's HTTP API over an
 * `HttpBackend`.
 *
 * Request lifecycle:
 * 1. `onRequest`: assign the request id (10 hex digits, CouchDB's nonce length) and send it as
 *    `X-Couch-Request-ID`. Reply to a CORS preflight, or add the CORS headers (cors.ts). Reject a
 *    request target longer than `maxUrlBytes` (414), parse the path, identify the caller and
 *    check its access (gate.ts: 401 or 403), and count an open `_changes` feed against the
 *    caller's cap (429). This runs before the body is read, so an upload that would be
 *    rejected is never buffered.
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
import {
  type AdminCredential,
  Authenticator,
  type AuthenticatorOptions,
  DEFAULT_PBKDF2_ITERATIONS,
} from './auth.js';
import type { HttpBackend } from './backend.js';
import { type RequestFacts, RequestScope, type ServerContext } from './context.js';
import { applyCors, type CorsSettings, resolveCors } from './cors.js';
import { FeedLimiter, feedKey, isWaitingFeed } from './feed-limiter.js';
import {
  authorizeRequest,
  DEFAULT_SESSION_TIMEOUT_S,
  type Identity,
  identify,
  type SecuritySettings,
} from './gate.js';
import { type HttpLimits, resolveLimits } from './limits.js';
import { sendError } from './reply.js';
import { isValidDatabaseName, parseRequestTarget, type RequestTarget } from './request-target.js';
import { requiredAccess, route } from './router.js';
import { userStore } from './users.js';

/** Request ids are 10 hex digits, as CouchDB's: 4 of a per-process random prefix, 6 of a counter. */
const REQUEST_ID_PREFIX_BYTES = 2;
const REQUEST_COUNTER_DIGITS = 6;
const REQUEST_COUNTER_LIMIT = 16 ** REQUEST_COUNTER_DIGITS;
const KEEP_ALIVE_TIMEOUT_MS = 75_000;
/** Methods routed besides fastify's defaults; others reach the not-found handler. */
const EXTRA_METHODS = ['COPY'];
const ROUTED_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'COPY', 'OPTIONS', 'PATCH'];

const ANONYMOUS_IDENTITY: Identity = Object.freeze({
  user: Object.freeze({ name: null, roles: Object.freeze([]) }),
  method: null,
});

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
  /** Sessions and access control; cookie sessions are off without a `cookieSecret`. */
  readonly security?: Partial<SecuritySettings>;
  /** CORS; off unless `origins` names at least one origin. */
  readonly cors?: Partial<CorsSettings>;
  /** Serve HTTPS with this PEM key and certificate chain. */
  readonly tls?: { readonly key: Buffer; readonly cert: Buffer };
}

interface RequestState {
  target: RequestTarget;
  facts: RequestFacts;
  identity: Identity;
  /** Ends the request's count against the open-feed cap; set for waiting feeds only. */
  releaseFeed?: () => void;
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

/**
 * Request ids: a random prefix drawn once per process and a counter. Ids of different nodes and
 * restarts rarely collide, and a request needs no random bytes of its own.
 */
const requestIdPrefix = randomBytes(REQUEST_ID_PREFIX_BYTES).toString('hex');
let requestCounter = 0;

function newRequestId(): string {
  requestCounter = (requestCounter + 1) % REQUEST_COUNTER_LIMIT;
  return requestIdPrefix + requestCounter.toString(16).padStart(REQUEST_COUNTER_DIGITS, '0');
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

function resolveSecurity(
  overrides: Partial<SecuritySettings> = {},
  tls: boolean,
): SecuritySettings {
  return {
    cookieSecret: overrides.cookieSecret ?? null,
    sessionTimeoutS: overrides.sessionTimeoutS ?? DEFAULT_SESSION_TIMEOUT_S,
    secureCookies: overrides.secureCookies ?? tls,
    defaultSecurity: overrides.defaultSecurity ?? 'admin_only',
    passwordIterations: overrides.passwordIterations ?? DEFAULT_PBKDF2_ITERATIONS,
  };
}

/** Counts a waiting feed against its caller's cap until its response closes. */
function holdFeed(limiter: FeedLimiter, key: string, reply: FastifyReply): () => void {
  limiter.acquire(key);
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    limiter.release(key);
  };
  reply.raw.once('close', release);
  return release;
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
  const security = resolveSecurity(options.security, options.tls !== undefined);
  const cors = resolveCors(options.cors);
  const authenticator = new Authenticator(options.admins, options.auth, userStore(options.backend));
  const context: ServerContext = {
    backend: options.backend,
    limits,
    log: logger,
    version: options.version ?? '0.0.0',
    attachmentCompression: options.attachmentCompression ?? {},
    authenticator,
    security,
  };
  const feeds = new FeedLimiter(limits.maxFeedsPerCaller);

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
    requestTimeout: limits.requestTimeoutMs,
    forceCloseConnections: true,
    exposeHeadRoutes: false,
    return503OnClosing: true,
    ...(options.tls === undefined
      ? { http: { maxHeaderSize: limits.maxHeaderBytes } }
      : {
          https: {
            key: options.tls.key,
            cert: options.tls.cert,
            maxHeaderSize: limits.maxHeaderBytes,
          },
        }),
    clientErrorHandler: handleClientError,
    frameworkErrors: (error, _request, reply) => {
      reply.header('x-couch-request-id', newRequestId());
      sendError(reply, fastifyErrorToCouch(error) ?? errors.badRequest(error.message));
    },
  });
  for (const method of EXTRA_METHODS) fastify.addHttpMethod(method, { hasBody: false });
  fastify.server.headersTimeout = limits.headersTimeoutMs;

  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, body);
  });

  fastify.addHook('onRequest', async (request, reply) => {
    reply.header('x-couch-request-id', request.id);
    if (applyCors(cors, request, reply)) return reply;
    const url = originalUrl(request);
    if (Buffer.byteLength(url) > limits.maxUrlBytes) throw errors.uriTooLong();
    const target = parseRequestTarget(url);
    const first = target.segments[0]?.text;
    const db = first !== undefined && isValidDatabaseName(first) ? first : null;
    const facts: RequestFacts = { user: null, db };
    const state: RequestState = { target, facts, identity: ANONYMOUS_IDENTITY };
    requestStates.set(request, state);

    const rule = requiredAccess(target.segments, request.method);
    if (rule.kind === 'public') return;
    try {
      state.identity = await identify(request, authenticator, security);
      facts.user = state.identity.user.name;
      await authorizeRequest(
        rule,
        target.segments,
        request.method,
        state.identity.user,
        options.backend,
        security,
      );
    } catch (error) {
      const challenge = request.headers['x-couchdb-www-authenticate'];
      if (isCouchError(error) && error.status === 401 && typeof challenge === 'string') {
        reply.header('www-authenticate', challenge);
      }
      throw error;
    }
    if (state.identity.refreshedCookie !== undefined) {
      reply.header('set-cookie', state.identity.refreshedCookie);
    }
    if (isWaitingFeed(target)) {
      const key = feedKey(state.identity.user.name, request.ip);
      state.releaseFeed = holdFeed(feeds, key, reply);
    }
  });

  fastify.addHook('onResponse', async (request, reply) => {
    const state = requestStates.get(request);
    state?.releaseFeed?.();
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
    await route(
      new RequestScope(context, request, reply, state.target, state.facts, state.identity),
    );
  };
  fastify.route({ method: ROUTED_METHODS, url: '/', handler });
  fastify.setNotFoundHandler(handler);
  return fastify;
}
