/**
 * Cross-origin resource sharing, configured as CouchDB's `[cors]` section and off by default.
 *
 * - A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) is answered 204
 *   before authentication. When the origin, the method and every requested header are allowed,
 *   the reply carries `Access-Control-Allow-Origin`, `-Methods`, `-Headers`, `-Max-Age` (and
 *   `-Credentials`); otherwise it carries none of them, so the browser stops the request.
 * - Any other request from an allowed origin gets `Access-Control-Allow-Origin`, `Vary: Origin`
 *   and the exposed headers CouchDB exposes.
 * - With `origins` `*`, any origin is allowed. With credentials on, the reply names the
 *   request's origin instead of `*`, as browsers require.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

export interface CorsSettings {
  /** Allowed origins (`scheme://host[:port]`), or `*` for any. Empty turns CORS off. */
  readonly origins: readonly string[];
  /** Whether browsers may send cookies and credentials. */
  readonly credentials: boolean;
  readonly methods: readonly string[];
  /** Request headers a browser may send, lowercase. */
  readonly headers: readonly string[];
  /** How long a browser may cache a preflight reply, in seconds. */
  readonly maxAgeS: number;
}

/** CouchDB 3.x's defaults, with no origin allowed. */
export const DEFAULT_CORS: CorsSettings = Object.freeze({
  origins: [],
  credentials: false,
  methods: ['GET', 'PUT', 'POST', 'HEAD', 'DELETE'],
  headers: [
    'accept',
    'accept-language',
    'authorization',
    'content-length',
    'content-range',
    'content-type',
    'destination',
    'expires',
    'if-match',
    'if-modified-since',
    'if-none-match',
    'last-event-id',
    'last-modified',
    'origin',
    'pragma',
    'x-couch-full-commit',
    'x-couch-id',
    'x-couch-persist',
    'x-couchdb-www-authenticate',
    'x-http-method-override',
    'x-requested-with',
  ],
  maxAgeS: 600,
});

const EXPOSED_HEADERS =
  'cache-control, content-type, etag, location, server, x-couch-request-id, x-couch-update-newrev';
const NO_CONTENT = 204;

/** Merges overrides into the defaults; lists are replaced, not merged. */
export function resolveCors(overrides: Partial<CorsSettings> = {}): CorsSettings {
  const merged = { ...DEFAULT_CORS, ...overrides };
  return {
    ...merged,
    methods: merged.methods.map((method) => method.toUpperCase()),
    headers: merged.headers.map((header) => header.toLowerCase()),
  };
}

function allowsOrigin(settings: CorsSettings, origin: string): boolean {
  return settings.origins.includes('*') || settings.origins.includes(origin);
}

function allowOriginValue(settings: CorsSettings, origin: string): string {
  return settings.origins.includes('*') && !settings.credentials ? '*' : origin;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * Answers a CORS preflight and returns true, or adds the CORS headers of an ordinary request
 * and returns false.
 */
export function applyCors(
  settings: CorsSettings,
  request: FastifyRequest,
  reply: FastifyReply,
): boolean {
  if (settings.origins.length === 0) return false;
  const origin = header(request, 'origin');
  if (origin === undefined) return false;
  const requestedMethod = header(request, 'access-control-request-method');
  if (request.method === 'OPTIONS' && requestedMethod !== undefined) {
    if (preflightAllowed(settings, origin, requestedMethod, request)) {
      reply.headers({
        'access-control-allow-origin': allowOriginValue(settings, origin),
        'access-control-allow-methods': settings.methods.join(', '),
        'access-control-allow-headers': settings.headers.join(', '),
        'access-control-max-age': String(settings.maxAgeS),
        vary: 'Origin',
      });
      if (settings.credentials) reply.header('access-control-allow-credentials', 'true');
    }
    reply.code(NO_CONTENT).send();
    return true;
  }
  if (!allowsOrigin(settings, origin)) return false;
  reply.headers({
    'access-control-allow-origin': allowOriginValue(settings, origin),
    'access-control-expose-headers': EXPOSED_HEADERS,
    vary: 'Origin',
  });
  if (settings.credentials) reply.header('access-control-allow-credentials', 'true');
  return false;
}

function preflightAllowed(
  settings: CorsSettings,
  origin: string,
  method: string,
  request: FastifyRequest,
): boolean {
  if (!allowsOrigin(settings, origin)) return false;
  if (!settings.methods.includes(method.toUpperCase())) return false;
  const requested = header(request, 'access-control-request-headers');
  if (requested === undefined) return true;
  return requested
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name.length > 0)
    .every((name) => settings.headers.includes(name));
}
