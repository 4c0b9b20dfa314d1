/**
 * Fauxton, CouchDB's admin UI, at `/_utils/`, served as CouchDB 3.x serves it. Files need no
 * authentication, because the UI logs in through `_session` itself. `/_utils` redirects to
 * `/_utils/`, since asset paths are relative. Files are confined to Fauxton's folder and
 * served to GET and HEAD only, with `Cache-Control: private, must-revalidate` and a
 * content-security policy that allows what the 1.2.6 build needs: `eval` in its bundle,
 * inline styles, and `data:` images and fonts.
 *
 * Also the routes Fauxton requests that Divan has no other use for: `_cluster_setup` (the
 * cluster is configured by start-up flags, so it is always `cluster_finished`) and the
 * replication scheduler probes, which return CouchDB's 501 error for a missing feature.
 */
import { FAUXTON_MISSING, fauxtonInstalled, fauxtonRoot } from '../../ops/fauxton.js';
import { sendRedirect, serveStatic } from '../../ops/static-files.js';
import { errors } from '../../util/couch-error.js';
import type { RequestScope } from '../context.js';
import type { MethodTable } from './metrics.js';

export const UTILS_PREFIX = '_utils';
const INDEX_FILE = 'index.html';
const UTILS_HEADERS: Readonly<Record<string, string>> = {
  'cache-control': 'private, must-revalidate',
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; font-src 'self' data:; " +
    "script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; connect-src 'self'",
  'x-content-type-options': 'nosniff',
};
const SETUP_IS_FIXED =
  'A Divan cluster is configured by the start-up flags of its nodes; it is already finished.';
const NO_SCHEDULER = 'Divan does not implement replication jobs yet.';

/** Returns the handlers of a `/_utils...` path. */
export function utilsRoute(scope: RequestScope, names: readonly string[]): MethodTable {
  if (names.length === 1 && !scope.target.rawPath.endsWith('/')) {
    return { GET: () => sendRedirect(scope.reply, `/${UTILS_PREFIX}/`) };
  }
  const file = names.length === 1 ? [INDEX_FILE] : names.slice(1);
  return { GET: () => sendFauxtonFile(scope, file) };
}

/** Returns the handlers of Fauxton's other server routes, or null for any other path. */
export function fauxtonRoute(names: readonly string[]): MethodTable | null {
  const [first] = names;
  if (first === '_cluster_setup' && names.length === 1) {
    return {
      GET: (scope) => scope.sendJson(200, { state: 'cluster_finished' }),
      POST: () => Promise.reject(errors.badRequest(SETUP_IS_FIXED)),
    };
  }
  if (first === '_scheduler' && names.length === 2) {
    return { GET: () => Promise.reject(errors.notImplemented(NO_SCHEDULER)) };
  }
  return null;
}

async function sendFauxtonFile(scope: RequestScope, file: readonly string[]): Promise<void> {
  if (!fauxtonInstalled()) throw errors.notFound(FAUXTON_MISSING);
  const outcome = await serveStatic(scope.reply, scope.method, file, {
    root: fauxtonRoot(),
    headers: UTILS_HEADERS,
  });
  if (outcome === 'not_found') throw errors.notFound('missing');
}
