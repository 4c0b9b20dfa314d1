/**
 * The Node.js flags of a node process: `bin/divan.js` carries them in its `#!` line, a node
 * started through it runs with them, and a node started by plain `node bin/divan.js` logs a
 * warning that names them.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type TestContext, test } from 'node:test';
import { missingRuntimeFlags, NODE_RUNTIME_FLAGS } from '../../src/cli/runtime-flags.js';
import { waitFor } from '../support/cluster.js';
import { freePorts } from '../support/ports.js';
import { singleNodeStartArgs } from '../support/start-args.js';
import { tempDir } from '../support/tmp.js';

const BIN = resolve('bin/divan.js');
const WARNING = 'node started without the Node.js flags of bin/divan.js';

test('bin/divan.js #! line carries the flags', () => {
  const firstLine = readFileSync(BIN, 'utf8').split('\n')[0];
  assert.equal(firstLine, `#!/usr/bin/env -S node ${NODE_RUNTIME_FLAGS.join(' ')}`);
});

test('missingRuntimeFlags reads execArgv and NODE_OPTIONS', () => {
  assert.ok(NODE_RUNTIME_FLAGS.length > 0);
  assert.deepEqual(missingRuntimeFlags([], ''), [...NODE_RUNTIME_FLAGS]);
  assert.deepEqual(missingRuntimeFlags([...NODE_RUNTIME_FLAGS], ''), []);
  assert.deepEqual(missingRuntimeFlags(['--inspect'], ` ${NODE_RUNTIME_FLAGS.join('  ')} `), []);
  assert.deepEqual(missingRuntimeFlags(['--max-semi-space-size=16'], '--max-semi-space-size=8'), [
    ...NODE_RUNTIME_FLAGS,
  ]);
  const underscored = NODE_RUNTIME_FLAGS.map((flag) => {
    const [name, value] = flag.split('=');
    return `--${name!.slice(2).replaceAll('-', '_')}${value === undefined ? '' : `=${value}`}`;
  });
  assert.deepEqual(missingRuntimeFlags(underscored, ''), []);
});

interface Started {
  child: ChildProcess;
  log: () => string;
}

async function startSingleNode(
  t: TestContext,
  command: string,
  prefix: string[],
): Promise<Started> {
  const dir = await tempDir(t);
  const [http, peer] = await freePorts(2);

  const secretFile = join(dir, 'cluster.secret');
  writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const child = spawn(
    command,
    [...prefix, ...singleNodeStartArgs(dir, http!, peer!, secretFile)],
    // Without NODE_OPTIONS from the test runner, which could carry the flags.
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } },
  );

  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  let running = true;
  const exited = new Promise<void>((done) =>
    child.once('exit', () => {
      running = false;
      done();
    }),
  );
  t.after(async () => {
    child.kill('SIGKILL');
    await exited;
  });

  await waitFor(
    'the node to listen',
    () => {
      assert.ok(running, `the node exited:\n${output}`);
      return output.includes('http listening');
    },
    30_000,
  );
  return { child, log: () => output };
}

test('node start warns only without the flags', async (t) => {
  const direct = await startSingleNode(t, BIN, []);
  assert.doesNotMatch(direct.log(), new RegExp(WARNING));
  const plain = await startSingleNode(t, process.execPath, [BIN]);
  assert.match(plain.log(), new RegExp(WARNING));
  const line = plain
    .log()
    .split('\n')
    .find((text) => text.includes(WARNING))!;
  assert.deepEqual(JSON.parse(line).missing, [...NODE_RUNTIME_FLAGS]);
});
