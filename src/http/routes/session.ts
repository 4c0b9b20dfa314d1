/**
 * `/_session`, CouchDB's cookie sessions:
 * - `POST` with `{"name", "password"}` as JSON or as an HTML form logs in: 200
 *   `{"ok":true,"name","roles"}` with an `AuthSession` cookie, or 401 for a wrong name or
 *   password. With `?next=/path`, the reply is a 302 redirect to that path of this server.
 * - `GET` returns the caller's `userCtx` and how it was authenticated.
 * - `DELETE` clears the cookie.
 *
 * The cookie is signed with the cluster's cookie secret (src/security/cookie.ts), so every
 * node accepts it. Cookies are `HttpOnly`, `SameSite=Lax`, and `Secure` when the HTTP port
 * serves TLS.
 */
import { decodeMember } from '../../document/json.js';
import { errors } from '../../util/couch-error.js';
import type { RequestScope } from '../context.js';
import { issueCookie, sessionCookie, userOf } from '../gate.js';
import { USERS_DB } from '../users.js';

const FORM_CONTENT_TYPE = 'application/x-www-form-urlencoded';
const WRONG_CREDENTIALS = 'Name or password is incorrect.';
/** A `next` redirect must stay on this server: a path, not `//host` or a URL. */
const LOCAL_PATH = /^\/(?![/\\])/;

function readLogin(scope: RequestScope): { name: unknown; password: unknown } {
  const type = scope.header('content-type')?.trim().toLowerCase() ?? '';
  if (type.startsWith(FORM_CONTENT_TYPE)) {
    const form = new URLSearchParams(scope.body().toString('utf8'));
    return { name: form.get('name') ?? undefined, password: form.get('password') ?? undefined };
  }
  scope.requireJsonContentType();
  const body = scope.jsonObjectBody();
  const fields: Record<string, unknown> = {};
  for (const member of body.members) {
    if (member.key === 'name' || member.key === 'password') {
      fields[member.key] = decodeMember(body, member);
    }
  }
  return { name: fields.name, password: fields.password };
}

export async function handlePostSession(scope: RequestScope): Promise<void> {
  const { name, password } = readLogin(scope);
  if (typeof name !== 'string' || typeof password !== 'string' || name === '') {
    throw errors.unauthorized(WRONG_CREDENTIALS);
  }
  const outcome = await scope.server.authenticator.verify(name, password);
  if (outcome.kind !== 'admin' && outcome.kind !== 'user') {
    throw errors.unauthorized(WRONG_CREDENTIALS);
  }
  const credential = await scope.server.authenticator.sessionCredential(name);
  if (credential === null) throw errors.unauthorized(WRONG_CREDENTIALS);
  const cookie = issueCookie(scope.server.security, name, credential.salt);
  const user = userOf(outcome);
  scope.facts.user = name;
  const next = scope.query.string('next');
  if (next !== undefined && LOCAL_PATH.test(next)) {
    scope.reply.header('set-cookie', cookie).header('location', next);
    scope.sendJson(302, { ok: true, name: user.name, roles: user.roles });
    return;
  }
  scope.sendJson(200, { ok: true, name: user.name, roles: user.roles }, { 'set-cookie': cookie });
}

export function handleGetSession(scope: RequestScope): void {
  const { user, method } = scope.identity;
  scope.sendJson(200, {
    ok: true,
    userCtx: { name: user.name, roles: user.roles },
    info: {
      authentication_handlers: ['cookie', 'default'],
      ...(method === null ? {} : { authenticated: method, authentication_db: USERS_DB }),
    },
  });
}

export function handleDeleteSession(scope: RequestScope): void {
  scope.sendJson(200, { ok: true }, { 'set-cookie': sessionCookie(scope.server.security, '', 0) });
}
