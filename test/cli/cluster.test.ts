/**
 * The `divan` command line as a user runs it: `divan cluster` starts a local cluster, prints
 * its URLs and credentials, stops on SIGTERM and starts again with its data; `divan status`
 * prints the groups; `divan start` rejects a bad configuration with a message.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import { waitFor } from '../support/cluster.js';
import { freePortRange, freePorts } from '../support/ports.js';
import { singleNodeStartArgs } from '../support/start-args.js';
import { tempDir } from '../support/tmp.js';

const BIN = resolve('bin/divan.js');

interface Running {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function runCluster(args: string[]): Running {
  const child = spawn(process.execPath, [BIN, 'cluster', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr!.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { child, output: () => output, exited };
}

function listenOn(port: number): Promise<Server> {
  return new Promise((resolveListen, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolveListen(server));
  });
}

async function get(url: string, password: string): Promise<{ status: number; body: string }> {
  const response = await request(url, {
    headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
  });
  return { status: response.statusCode, body: await response.body.text() };
}

test('divan cluster starts, stops and restarts with its data', async (t) => {
  const dir = await tempDir(t);
  const data = join(dir, 'cluster');
  // A fourth port each for the node that `divan cluster add` starts.
  const port = await freePortRange(4);
  const peerPort = await freePortRange(4);
  const args = [
    '--nodes',
    '3',
    '--data',
    data,
    '--port',
    String(port),
    '--peer-port',
    String(peerPort),
  ];

  const first = runCluster(args);
  t.after(() => first.child.kill('SIGKILL'));
  await waitFor('the cluster to come up', () => first.output().includes('is up'), 60_000);
  assert.match(first.output(), /generated server admin password/);
  const password = readFileSync(join(data, 'admin.txt'), 'utf8').trim().split(':')[1]!;
  assert.ok(first.output().includes(`admin:${password}`), 'the password is printed');

  const base = `http://127.0.0.1:${port}`;
  assert.equal(
    (
      await request(`${base}/recipes`, {
        method: 'PUT',
        headers: { authorization: `Basic ${Buffer.from(`admin:${password}`).toString('base64')}` },
      })
    ).statusCode,
    201,
  );
  const status = spawnSync(
    process.execPath,
    [BIN, 'status', `http://admin:${password}@127.0.0.1:${port + 1}`],
    { encoding: 'utf8' },
  );
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /^recipes\s+n\d/m);

  // The next HTTP port is taken: `divan cluster add` must pass over it.
  const squatter = await listenOn(port + 3);
  t.after(() => squatter.close());
  const added = spawnSync(process.execPath, [BIN, 'cluster', 'add', '--data', data], {
    encoding: 'utf8',
  });
  assert.equal(added.status, 0, `${added.stdout}${added.stderr}${first.output()}`);
  const addedPort = Number(/added n4: http:\/\/127\.0\.0\.1:(\d+)\//.exec(added.stdout)?.[1]);
  assert.ok(addedPort > port + 3, `n4 listens above the taken port: ${added.stdout}`);
  await waitFor('n4 to become a voter', async () => {
    const membership = JSON.parse((await get(`${base}/_membership`, password)).body);
    return membership.cluster_nodes.join(',') === 'n1,n2,n3,n4';
  });
  const admin = `http://admin:${password}@127.0.0.1:${addedPort}`;
  const moved = spawnSync(process.execPath, [BIN, 'transfer', admin, 'recipes', 'n4'], {
    encoding: 'utf8',
  });
  assert.equal(moved.status, 0, moved.stderr);
  assert.match(moved.stdout, /"leader":"n4"/);
  const left = spawnSync(process.execPath, [BIN, 'leave', admin, 'n4'], { encoding: 'utf8' });
  assert.equal(left.status, 0, left.stderr);
  await waitFor('n4 to leave', async () => {
    const membership = JSON.parse((await get(`${base}/_membership`, password)).body);
    return membership.all_nodes.join(',') === 'n1,n2,n3';
  });

  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0);
  for (const name of ['n1', 'n2', 'n3', 'n4']) {
    const log = readFileSync(join(data, name, 'divan.log'), 'utf8');
    assert.match(log, /http listening/);
    assert.doesNotMatch(log, /without the Node.js flags/, `${name} runs with bin/divan.js's flags`);
  }

  const second = runCluster(args);
  t.after(() => second.child.kill('SIGKILL'));
  await waitFor('the cluster to come up again', () => second.output().includes('is up'), 60_000);
  assert.doesNotMatch(second.output(), /generated/);
  await waitFor('the database after the restart', async () => {
    return (await get(`${base}/_all_dbs`, password)).body.includes('recipes');
  });
  second.child.kill('SIGTERM');
  assert.equal(await second.exited, 0);
});

/** Runs `divan start` for a one-node cluster in `dir` and waits for it to exit. */
function startAlone(dir: string, http: number, peer: number) {
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'a-cluster-secret-of-enough-length\n');
  return spawnSync(process.execPath, [BIN, ...singleNodeStartArgs(dir, http, peer, secretFile)], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

test('divan start names a taken port', async (t) => {
  const dir = await tempDir(t);
  const [http, peer] = await freePorts(2);
  const squatter = await listenOn(http!);
  t.after(() => squatter.close());
  const started = startAlone(dir, http!, peer!);
  assert.equal(started.status, 2, started.stderr);
  assert.match(
    started.stderr,
    new RegExp(`cannot listen for HTTP on 127\\.0\\.0\\.1:${http}: address already in use`),
  );
  assert.equal(existsSync(join(dir, 'n1', '_dbs.couch')), false, 'no file is created');
});

test('divan start reports a file error', async (t) => {
  const dir = await tempDir(t);
  const [http, peer] = await freePorts(2);
  mkdirSync(join(dir, 'n1', '_dbs.couch'), { recursive: true });
  const started = startAlone(dir, http!, peer!);
  assert.equal(started.status, 1, started.stderr);
  assert.match(started.stderr, /^divan: EISDIR: illegal operation on a directory/m);
  assert.doesNotMatch(started.stderr, /triggerUncaughtException/);
});

test('divan start rejects a bad configuration', async () => {
  const missing = spawnSync(process.execPath, [BIN, 'start', '--name', 'n1'], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /missing --members/);
  const badName = spawnSync(
    process.execPath,
    [BIN, 'start', '--name', 'Bad Name', '--members', 'x@127.0.0.1:1'],
    { encoding: 'utf8' },
  );
  assert.equal(badName.status, 2);
  assert.match(badName.stderr, /invalid node name 'Bad Name'/);
});
