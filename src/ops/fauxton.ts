/**
 * Where Fauxton's built files are: `vendor/fauxton/release` in the checkout, filled by
 * `scripts/fetch-fauxton.js` when `npm install` runs, or `$DIVAN_FAUXTON_DIR/release`.
 * The folder may be missing when the registry was unreachable at install time. `/_utils/`
 * then returns 404 with a reason that tells how to fetch it.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Compiled to dist/src/ops; the vendor folder sits at the top of the checkout. */
const DEFAULT_FAUXTON_DIR = fileURLToPath(new URL('../../../vendor/fauxton/', import.meta.url));

/** Returns the folder that Fauxton's `index.html` and `dashboard.assets` are served from. */
export function fauxtonRoot(): string {
  return join(process.env.DIVAN_FAUXTON_DIR ?? DEFAULT_FAUXTON_DIR, 'release');
}

export function fauxtonInstalled(): boolean {
  return existsSync(join(fauxtonRoot(), 'index.html'));
}

export const FAUXTON_MISSING =
  'Fauxton is not installed on this node: run `npm run fetch-fauxton` in the Divan checkout.';
