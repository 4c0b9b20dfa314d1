#!/usr/bin/env node
// Runs the compiled test files under dist/test with Node's built-in test runner.
// `npm test` runs every `*.test.js`; with DIVAN_TEST_FULL=1 (`npm run test:full`) the
// long `*.full.test.js` files run too. Arguments narrow the run to files whose path
// contains one of them, e.g. `node scripts/run-tests.js storage/btree`.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = 'dist/test';
const full = process.env.DIVAN_TEST_FULL === '1';
const filters = process.argv.slice(2);

function collect(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...collect(path));
    else if (name.endsWith('.test.js')) files.push(path);
  }
  return files;
}

const files = collect(root).filter((path) => {
  if (path.endsWith('.full.test.js') && !full) return false;
  return filters.length === 0 || filters.some((filter) => path.includes(filter));
});
if (files.length === 0) {
  console.error(`no test files matched under ${root}`);
  process.exit(1);
}

const concurrency = process.env.DIVAN_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-timeout=1200000', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
