/**
 * The Raft benchmark runs to completion on a small count and prints its figures; speed itself
 * is measured by `npm run bench -- raft`, not asserted here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { tempDir } from '../support/tmp.js';

test('raft benchmark prints its figures', async (t) => {
  const dir = await tempDir(t);
  const runner = resolve('dist/bench/run.js');
  const run = spawnSync(process.execPath, [runner, 'raft', '--proposals', '3000'], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  for (const outstanding of [1, 256]) {
    const scenario = `raft 3 nodes in-process, ${outstanding} outstanding`;
    assert.match(run.stdout, new RegExp(`${scenario} proposals committed and applied: divan=\\d+`));
    assert.match(run.stdout, new RegExp(`${scenario} time per proposal: divan=[\\d.]+ \\(µs\\)`));
  }
  assert.ok(existsSync(join(dir, 'bench', 'results', 'raft-latest.json')));
});
