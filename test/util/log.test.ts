/**
 * The root logger's output formats on stderr: JSON lines by default, text lines with
 * DIVAN_LOG_FORMAT=pretty, and an error naming the variable for any other value.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

const SCRIPT = `import('./dist/src/util/log.js').then((m) => {
  m.createLogger({ node: 'n1' }).info({ db: 'books', term: 3 }, 'became leader');
});`;

function run(format: string | undefined) {
  const env = { ...process.env };
  delete env.DIVAN_LOG_FORMAT;
  if (format !== undefined) env.DIVAN_LOG_FORMAT = format;
  return spawnSync(process.execPath, ['-e', SCRIPT], { env, encoding: 'utf8' });
}

test('log lines are JSON by default', () => {
  const result = run(undefined);
  const line = JSON.parse(result.stderr.trim()) as Record<string, unknown>;
  assert.equal(line.msg, 'became leader');
  assert.equal(line.node, 'n1');
  assert.equal(line.term, 3);
});

test('pretty format writes text lines', () => {
  const result = run('pretty');
  assert.match(result.stderr, /INFO.*became leader/);
  assert.match(result.stderr, /db: "books"/);
  assert.throws(() => JSON.parse(result.stderr.trim()));
});

test('unknown format is rejected', () => {
  const result = run('xml');
  assert.notEqual(result.status, 0);
  assert.match(result.stderr, /DIVAN_LOG_FORMAT must be json or pretty, not "xml"/);
});
