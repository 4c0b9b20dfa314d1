/**
 * Bad input over HTTP and over the peer port, aimed at a real cluster: every request gets a
 * CouchDB error, unauthenticated requests get 401, garbage and impostors on the peer port are
 * disconnected, and the nodes keep serving.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { Transport } from '../../src/cluster/transport/index.js';
import { silentLogger } from '../../src/util/log.js';
import { TestCluster } from '../support/cluster.js';
import { freePort } from '../support/ports.js';

const DB = 'bad-input';

test('bad input never stops a node', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1, n2] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
  assert.equal((await cluster.httpRetry(n1, 'PUT', `/${DB}`)).status, 201);

  await t.test('requests without credentials get 401', async () => {
    for (const path of [`/${DB}`, '/_all_dbs', `/${DB}/doc`, `/${DB}/_changes`]) {
      const result = await cluster.http(n1, 'GET', path, undefined, { auth: false });
      assert.equal(result.status, 401, path);
      assert.equal((result.json as { error: string }).error, 'unauthorized');
    }
    const open = await cluster.http(n1, 'GET', '/', undefined, { auth: false });
    assert.equal(open.status, 200);
  });

  await t.test('malformed HTTP requests get CouchDB errors', async () => {
    const cases: {
      method: string;
      path: string;
      body?: string;
      type?: string;
      status: number;
      error: string;
    }[] = [
      { method: 'PUT', path: `/${DB}/x`, body: '{"a":', status: 400, error: 'bad_request' },
      { method: 'PUT', path: `/${DB}/x`, body: '[1,2]', status: 400, error: 'bad_request' },
      {
        method: 'PUT',
        path: `/${DB}/x`,
        body: `${'['.repeat(5000)}${']'.repeat(5000)}`,
        status: 400,
        error: 'bad_request',
      },
      { method: 'PUT', path: `/${DB}/_bad`, body: '{}', status: 400, error: 'illegal_docid' },
      { method: 'PUT', path: `/${DB}/x`, body: '{"_foo":1}', status: 400, error: 'doc_validation' },
      { method: 'PUT', path: '/Bad-Name', status: 400, error: 'illegal_database_name' },
      {
        method: 'POST',
        path: `/${DB}/_bulk_docs`,
        body: '{"nodocs":[]}',
        status: 400,
        error: 'bad_request',
      },
      {
        method: 'POST',
        path: `/${DB}`,
        body: '{}',
        type: 'text/plain',
        status: 415,
        error: 'bad_content_type',
      },
      { method: 'GET', path: '/missing-db/x', status: 404, error: 'not_found' },
    ];
    for (const item of cases) {
      const result = await cluster.http(n2, item.method, item.path, item.body, {
        headers: { 'content-type': item.type ?? 'application/json' },
      });
      assert.equal(result.status, item.status, `${item.method} ${item.path}: ${result.body}`);
      assert.equal(
        (result.json as { error: string }).error,
        item.error,
        `${item.method} ${item.path}`,
      );
    }
    const big = JSON.stringify({ blob: 'x'.repeat(9 * 1024 * 1024) });
    const tooLarge = await cluster.http(n1, 'PUT', `/${DB}/big`, big);
    assert.equal(tooLarge.status, 413, tooLarge.body);
  });

  await t.test('garbage on the peer port is disconnected', async () => {
    for (const payload of [
      randomBytes(4096),
      Buffer.from('GET / HTTP/1.1\r\n\r\n'),
      Buffer.alloc(64, 0xff),
    ]) {
      await new Promise<void>((resolve) => {
        const socket = connect(n1.peerPort, '127.0.0.1', () => socket.write(payload));
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.setTimeout(15_000, () => socket.destroy());
      });
    }
  });

  await t.test('a peer with the wrong secret gets nothing through', async () => {
    const impostor = new Transport({
      nodeId: 'n3',
      listen: `127.0.0.1:${await freePort()}`,
      peers: { n1: `127.0.0.1:${n1.peerPort}` },
      secret: randomBytes(32),
      logger: silentLogger,
    });
    await impostor.start();
    try {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.equal(impostor.isConnected('n1'), false);
    } finally {
      await impostor.stop();
    }
  });

  for (const node of cluster.nodes) {
    assert.notEqual(node.process, null, `${node.name} is still running`);
  }
  const write = await cluster.httpRetry(n2, 'PUT', `/${DB}/after`, { ok: true });
  assert.equal(write.status, 201, write.body);
  const read = await cluster.http(n1, 'GET', `/${DB}/after`);
  assert.equal(read.status, 200, read.body);
});
