/**
 * `scripts/fetch-fauxton.js` never fails an install: with the registry unreachable (a closed
 * port on 127.0.0.1 and an empty npm cache) it prints why and exits 0, and with Fauxton already
 * in place it does nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { freePorts } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';

const SCRIPT = resolve('scripts/fetch-fauxton.js');
const run = promisify(execFile);

test('fetch without a registry', async (t) => {
  const dir = await tempDir(t, 'divan-fauxton-');
  const [closedPort] = await freePorts(1);
  const target = join(dir, 'fauxton');
  const scratch = join(dir, 'tmp');
  mkdirSync(scratch);
  const { stdout, stderr } = await run(process.execPath, [SCRIPT], {
    timeout: 120_000,
    env: {
      ...process.env,
      TMPDIR: scratch,
      DIVAN_FAUXTON_DIR: target,
      npm_config_registry: `http://127.0.0.1:${closedPort}/`,
      npm_config_cache: join(dir, 'npm-cache'),
      npm_config_fetch_retries: '0',
      npm_config_offline: 'false',
    },
  });
  assert.equal(stdout, '');
  assert.match(stderr, /npm pack fauxton@1\.2\.6 failed, so the registry is probably unreachable/);
  assert.match(stderr, /\/_utils\/ returns 404 until `npm run fetch-fauxton` succeeds/);
  assert.equal(existsSync(target), false, 'nothing unpacked');
  assert.deepEqual(readdirSync(scratch), [], 'the temporary directory is removed');
});

test('fetch with fauxton present', async (t) => {
  const dir = await tempDir(t, 'divan-fauxton-');
  mkdirSync(join(dir, 'release'));
  writeFileSync(join(dir, 'VERSION'), '1.2.6\n');
  const { stdout } = await run(process.execPath, [SCRIPT], {
    env: { ...process.env, DIVAN_FAUXTON_DIR: dir },
  });
  assert.match(stdout, /Fauxton 1\.2\.6 is already in/);
});
