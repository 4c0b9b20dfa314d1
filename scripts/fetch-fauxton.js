#!/usr/bin/env node
// Fetches Fauxton 1.2.6, CouchDB 3.1's admin UI, into vendor/fauxton/ for `/_utils/`.
//
// `npm pack fauxton@1.2.6` downloads the package tarball alone (installing the package would
// pull about 1,700 build dependencies). The tarball's SHA-1 and SHA-512 are checked against
// the registry's published values below. Only `package/dist/release` (the built UI) and the
// license are unpacked, into vendor/fauxton/release and vendor/fauxton/LICENSE.
//
// Never fails the install: when npm, the registry or tar is unavailable, or a checksum
// differs, it prints why and exits 0, and `/_utils/` returns 404 until a later
// `npm run fetch-fauxton` succeeds. DIVAN_SKIP_FAUXTON=1 skips it; DIVAN_FAUXTON_DIR sets
// another folder (the server reads the same variable).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const VERSION = '1.2.6';
const PACKAGE = `fauxton@${VERSION}`;
/** `dist.shasum` and `dist.integrity` of fauxton@1.2.6 as the npm registry publishes them. */
const SHA1 = 'bafd30a9ddb1fa6eaa4c444c6630fca956f6327d';
const SHA512 =
  'sha512-5ZwPKqstwmQclSHifWBmbyzlBOLoBB3gssGaiEFLPcIzHO0Zxz+uPr/D/Fs6DGH7Hfohw7s6zqcjwU9CRcshfw==';
const PACK_TIMEOUT_MS = 120_000;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const target = process.env.DIVAN_FAUXTON_DIR ?? join(root, 'vendor', 'fauxton');
const versionFile = join(target, 'VERSION');

/** The temporary directory of a fetch in progress, removed however the script ends. */
let work;

function skip(reason) {
  // process.exit does not run `finally` blocks, so the temporary directory is removed here.
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
  console.warn(
    `fetch-fauxton: ${reason}; /_utils/ returns 404 until \`npm run fetch-fauxton\` succeeds`,
  );
  process.exit(0);
}

if (process.env.DIVAN_SKIP_FAUXTON === '1') skip('skipped because DIVAN_SKIP_FAUXTON=1');
if (existsSync(versionFile) && readFileSync(versionFile, 'utf8').trim() === VERSION) {
  console.log(`fetch-fauxton: Fauxton ${VERSION} is already in ${target}`);
  process.exit(0);
}

work = mkdtempSync(join(tmpdir(), 'divan-fauxton-'));
try {
  let tarball;
  try {
    const output = execFileSync(
      'npm',
      ['pack', PACKAGE, '--pack-destination', work, '--json', '--ignore-scripts'],
      { encoding: 'utf8', timeout: PACK_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    tarball = join(work, JSON.parse(output)[0].filename);
  } catch (error) {
    const detail = String(error.stderr ?? error.message)
      .trim()
      .split('\n')
      .at(-1);
    skip(`npm pack ${PACKAGE} failed, so the registry is probably unreachable (${detail})`);
  }

  const bytes = readFileSync(tarball);
  const sha1 = createHash('sha1').update(bytes).digest('hex');
  const sha512 = `sha512-${createHash('sha512').update(bytes).digest('base64')}`;
  if (sha1 !== SHA1 || sha512 !== SHA512) {
    skip(`the ${PACKAGE} tarball does not match its published checksum (sha1 ${sha1})`);
  }

  const unpacked = join(work, 'unpacked');
  try {
    mkdirSync(unpacked, { recursive: true });
    execFileSync('tar', [
      '-xzf',
      tarball,
      '-C',
      unpacked,
      'package/dist/release',
      'package/LICENSE',
    ]);
  } catch (error) {
    skip(`unpacking ${tarball} failed (${error.message.trim()})`);
  }
  const staged = join(work, 'fauxton');
  mkdirSync(staged, { recursive: true });
  renameSync(join(unpacked, 'package', 'dist', 'release'), join(staged, 'release'));
  renameSync(join(unpacked, 'package', 'LICENSE'), join(staged, 'LICENSE'));
  writeFileSync(join(staged, 'VERSION'), `${VERSION}\n`);

  rmSync(target, { recursive: true, force: true });
  mkdirSync(dirname(target), { recursive: true });
  try {
    renameSync(staged, target);
  } catch {
    // The temporary directory may be on another file system.
    cpSync(staged, target, { recursive: true });
  }
  console.log(`fetch-fauxton: Fauxton ${VERSION} unpacked into ${target}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
