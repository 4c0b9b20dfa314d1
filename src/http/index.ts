/**
 * The HTTP layer's public API: the server factory, the backend interface the node implements,
 * the limits, and admin password hashing for the CLI.
 */
export type { AdminCredential, AuthenticatorOptions } from './auth.js';
export { Authenticator, hashPassword, parsePasswordHash, verifyPassword } from './auth.js';
export type * from './backend.js';
export { DEFAULT_HTTP_LIMITS, type HttpLimits, resolveLimits } from './limits.js';
export { createHttpServer, type HttpServerOptions } from './server.js';
