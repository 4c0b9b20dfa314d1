/**
 * The security model on a real three-node cluster: `_users` created with the cluster, users
 * and session cookies valid on every node, writes authorized by the leader against the
 * `_security` it has applied, and abuse the nodes must survive (a peer with the wrong secret,
 * garbage on the peer port, wrong passwords, forged cookies, deeply nested bodies).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { test } from 'node:test';
import { TestCluster, type TestNode, waitFor } from '../support/cluster.js';

const PASSWORD = 'pw-of-a-user';

function basic(name: string, password = PASSWORD): Record<string, string> {
  return { authorization: `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}` };
}

function as(
  cluster: TestCluster,
  node: TestNode,
  name: string | null,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  return cluster.http(node, method, path, body, {
    auth: false,
    headers: { ...(name === null ? {} : basic(name)), ...headers },
  });
}

async function createUser(cluster: TestCluster, node: TestNode, name: string): Promise<void> {
  const created = await cluster.httpRetry(node, 'PUT', `/_users/org.couchdb.user:${name}`, {
    name,
    type: 'user',
    roles: [],
    password: PASSWORD,
  });
  assert.equal(created.status, 201, created.body);
}

test('security on a real cluster', async (t) => {
  const cluster = await TestCluster.start(t);
  const [first, second, third] = cluster.nodes as [TestNode, TestNode, TestNode];

  await t.test('_users exists on every node', async () => {
    for (const node of cluster.nodes) {
      await waitFor(`_users on ${node.name}`, async () => {
        return (await cluster.http(node, 'GET', '/_users')).status === 200;
      });
    }
    await createUser(cluster, first, 'alice');
    await createUser(cluster, second, 'bob');
  });

  await t.test('a cookie from one node works on every node', async () => {
    const login = await as(cluster, second, null, 'POST', '/_session', {
      name: 'alice',
      password: PASSWORD,
    });
    assert.equal(login.status, 200, login.body);
    const cookie = String(login.headers['set-cookie']).split(';')[0]!;
    for (const node of cluster.nodes) {
      const session = await as(cluster, node, null, 'GET', '/_session', undefined, { cookie });
      assert.equal(
        (session.json as { userCtx: { name: string } }).userCtx.name,
        'alice',
        node.name,
      );
    }
    // Change the first character of the signature (the last one may only hold padding bits).
    const macStart = cookie.lastIndexOf('.') + 1;
    const swapped = cookie[macStart] === 'A' ? 'B' : 'A';
    const forged = cookie.slice(0, macStart) + swapped + cookie.slice(macStart + 1);
    const rejected = await as(cluster, third, null, 'GET', '/_session', undefined, {
      cookie: forged,
    });
    assert.equal((rejected.json as { userCtx: { name: null } }).userCtx.name, null);
  });

  await t.test('the leader authorizes every write', async () => {
    assert.equal((await cluster.httpRetry(first, 'PUT', '/guarded')).status, 201);
    const nodes = cluster.nodes;
    for (let round = 0; round < 12; round++) {
      const member = round % 2 === 0 ? 'alice' : 'bob';
      const setter = nodes[round % nodes.length]!;
      const writer = nodes[(round + 1) % nodes.length]!;
      const security = await cluster.httpRetry(setter, 'PUT', '/guarded/_security', {
        members: { names: [member] },
      });
      assert.equal(security.status, 200, security.body);
      // Right after the change, through another node: only the new member may write.
      const allowed = await as(cluster, writer, member, 'PUT', `/guarded/r${round}-${member}`, {});
      assert.equal(allowed.status, 201, `round ${round}: ${allowed.body}`);
      const former = member === 'alice' ? 'bob' : 'alice';
      const denied = await as(cluster, writer, former, 'PUT', `/guarded/r${round}-${former}`, {});
      assert.equal(denied.status, 403, `round ${round}: ${denied.body}`);
      assert.equal((denied.json as { error: string }).error, 'forbidden');
    }
    const all = await cluster.httpRetry(third, 'GET', '/guarded/_all_docs');
    const ids = (all.json as { rows: { id: string }[] }).rows.map((row) => row.id).sort();
    const expected = Array.from({ length: 12 }, (_, round) =>
      round % 2 === 0 ? `r${round}-alice` : `r${round}-bob`,
    );
    assert.deepEqual(ids, expected.sort());
  });

  await t.test('design documents need a database admin', async () => {
    const member = await as(cluster, second, 'bob', 'PUT', '/guarded/_design/x', {});
    assert.equal(member.status, 403, member.body);
    // The early check admits a member to _bulk_docs, so only the leader can refuse the design
    // document inside; send it through a follower so the refusal crosses the peer transport.
    const leader = await cluster.leaderOf('guarded');
    const follower = cluster.nodes.find((node) => node !== leader)!;
    const bulk = await as(cluster, follower, 'bob', 'POST', '/guarded/_bulk_docs', {
      docs: [{ _id: '_design/y' }],
    });
    assert.equal(bulk.status, 403, bulk.body);
    assert.deepEqual(bulk.json, {
      error: 'forbidden',
      reason: 'You are not a db or server admin.',
    });
    await cluster.httpRetry(first, 'PUT', '/guarded/_security', {
      admins: { names: ['bob'] },
      members: { names: ['alice'] },
    });
    const admin = await as(cluster, third, 'bob', 'PUT', '/guarded/_design/x', {});
    assert.equal(admin.status, 201, admin.body);
  });

  await t.test('abuse leaves the cluster serving', async () => {
    // A peer that does not know the secret, and plain garbage, on every peer port.
    await Promise.all(cluster.nodes.map((node) => sendGarbage(node.peerPort)));
    // Wrong passwords and forged cookies, at once.
    const attempts = [];
    for (let i = 0; i < 20; i++) {
      const node = cluster.nodes[i % 3]!;
      attempts.push(
        as(cluster, node, null, 'GET', '/guarded', undefined, basic('alice', `bad${i}`)),
      );
      attempts.push(
        as(cluster, node, null, 'GET', '/guarded', undefined, {
          cookie: `AuthSession=${randomBytes(40).toString('base64url')}`,
        }),
      );
    }
    const statuses = (await Promise.all(attempts)).map((result) => result.status);
    assert.ok(
      statuses.every((status) => status === 401),
      statuses.join(','),
    );
    // A deeply nested body is rejected without harm.
    const nested = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    const deep = await cluster.http(first, 'PUT', '/guarded/deep', `{"a":${nested}}`);
    assert.equal(deep.status, 400, deep.body);

    for (const node of cluster.nodes) {
      const write = await cluster.httpRetry(node, 'PUT', `/guarded/after-${node.name}`, {});
      assert.equal(write.status, 201, write.body);
    }
    const all = await cluster.httpRetry(second, 'GET', '/guarded/_all_docs');
    assert.equal((all.json as { total_rows: number }).total_rows, 16);
  });
});

/** Sends a wrong handshake and random frames to a peer port; resolves when it closes. */
function sendGarbage(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.on('connect', () => {
      socket.write(randomBytes(64 * 1024));
      socket.end();
    });
    socket.on('error', done);
    socket.on('close', done);
    socket.setTimeout(10_000, done);
  });
}
