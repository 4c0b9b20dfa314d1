/**
 * `GET /_divan/cluster` and the `/_divan/` status page on a real three-node cluster: the
 * merged JSON, pagination, authentication, static file serving, and the page drawn in
 * headless Chromium, also while a node is down.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN, TestCluster, type TestNode, waitFor } from '../support/cluster.js';
import { launchBrowser, screenshot } from './browser.js';

interface NodeStatus {
  name: string;
  reachable: boolean;
  connected: boolean | null;
  groups_led?: number;
}
interface MemberStatus {
  state: string;
  role: string | null;
}
interface DatabaseStatus {
  db: string;
  leader: string | null;
  leaderless: boolean;
  members: Record<string, MemberStatus>;
  lagging: string[];
}
interface ClusterStatus {
  node: string;
  nodes: NodeStatus[];
  databases: { total: number; skip: number; limit: number; rows: DatabaseStatus[] };
  leaderless: number;
}

const DATABASES = ['alpha', 'beta', 'gamma'];
/** Every database the status lists besides `_dbs`: the cluster creates `_users` itself. */
const LISTED = ['_users', ...DATABASES];

async function status(cluster: TestCluster, node: TestNode, query = ''): Promise<ClusterStatus> {
  const result = await cluster.http(node, 'GET', `/_divan/cluster${query}`);
  assert.equal(result.status, 200, result.body);
  return result.json as ClusterStatus;
}

test('cluster status and page', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
  for (const db of DATABASES) {
    assert.equal((await cluster.httpRetry(n1, 'PUT', `/${db}`)).status, 201);
  }
  await waitFor('the cluster to create _users', async () => {
    return (await cluster.http(n1, 'GET', '/_users')).status === 200;
  });
  for (const db of LISTED) await cluster.leaderOf(db);

  await t.test('status needs an admin', async () => {
    const anonymous = await cluster.http(n1, 'GET', '/_divan/cluster', undefined, {
      auth: false,
    });
    assert.equal(anonymous.status, 401);
  });

  await t.test('status of a healthy cluster', async () => {
    let body: ClusterStatus | undefined;
    await waitFor('every node reachable with a known address', async () => {
      body = await status(cluster, n2);
      return body.nodes.length === 3 && body.nodes.every((node) => node.reachable);
    });
    assert.equal(body!.node, 'n2');
    assert.deepEqual(
      body!.nodes.map((node) => node.connected),
      [true, null, true],
    );
    assert.deepEqual(
      body!.databases.rows.map((row) => row.db),
      ['_dbs', ...LISTED],
    );
    assert.equal(body!.databases.total, LISTED.length);
    assert.equal(body!.leaderless, 0);
    const led = body!.nodes.reduce((sum, node) => sum + (node.groups_led ?? 0), 0);
    assert.equal(led, LISTED.length + 1, 'every group led by one node');
    for (const row of body!.databases.rows) {
      assert.ok(row.leader !== null, `${row.db} has a leader`);
      assert.equal(row.members[row.leader]!.role, 'leader');
      assert.deepEqual(Object.keys(row.members), ['n1', 'n2', 'n3']);
    }
  });

  await t.test('status pages', async () => {
    const second = await status(cluster, n1, '?skip=1&limit=1');
    assert.deepEqual(
      second.databases.rows.map((row) => row.db),
      [LISTED[1]],
    );
    assert.equal(second.databases.skip, 1);
    assert.equal(second.databases.limit, 1);
  });

  await t.test('page files', async () => {
    const bare = await cluster.http(n1, 'GET', '/_divan', undefined, { auth: false });
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.location, '/_divan/');
    const index = await cluster.http(n1, 'GET', '/_divan/', undefined, { auth: false });
    assert.equal(index.status, 200);
    assert.match(String(index.headers['content-type']), /^text\/html/);
    assert.match(String(index.headers['content-security-policy']), /script-src 'self'/);
    assert.equal(index.headers['cache-control'], 'private, must-revalidate');
    const script = await cluster.http(n1, 'GET', '/_divan/status.js', undefined, { auth: false });
    assert.equal(script.headers['content-type'], 'application/javascript');
    for (const path of ['/_divan/..%2F..%2Fpackage.json', '/_divan/.hidden', '/_divan/nope.js']) {
      const outside = await cluster.http(n1, 'GET', path, undefined, { auth: false });
      assert.equal(outside.status, 404, path);
    }
  });

  const browser = await launchBrowser(t);
  if (browser === null) return;
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();

  await t.test('page logs in and draws', async () => {
    await page.goto(`${n1.url}/_divan/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('input[name=name]', ADMIN.name);
    await page.fill('input[name=password]', ADMIN.password);
    await page.click('#login button[type=submit]');
    await page.locator('.node').first().waitFor();
    await waitFor(
      'three nodes up on the page',
      async () => (await page.locator('.node:not(.down)').count()) === 3,
    );
    assert.equal(await page.locator('#databases tbody tr').count(), LISTED.length + 1);
    assert.equal(await page.locator('tr.leaderless').count(), 0);
    assert.equal(await page.locator('#databases .cell.leader').count(), LISTED.length + 1);
    await screenshot(t, page, 'status-healthy');
  });

  await t.test('page while a node is down', async () => {
    // The page is served by n1, so the victim is another node, a leader when one is.
    const leaders = (await status(cluster, n1)).databases.rows.map((row) => row.leader);
    const victim = leaders.includes('n2') ? n2 : n3;
    await cluster.kill(victim);
    await waitFor(
      `the page showing ${victim.name} down`,
      async () => (await page.locator(`.node.down[data-node="${victim.name}"]`).count()) === 1,
    );
    await waitFor('every database led by a live node', async () => {
      const body = await status(cluster, n1);
      return body.databases.rows.every((row) => row.leader !== null && row.leader !== victim.name);
    });
    const body = await status(cluster, n1);
    assert.equal(body.nodes.find((node) => node.name === victim.name)!.reachable, false);
    for (const row of body.databases.rows) {
      assert.equal(row.members[victim.name]!.state, 'down');
      assert.ok(row.lagging.includes(victim.name));
    }
    await waitFor(
      'down cells drawn',
      async () => (await page.locator('#databases .cell.down').count()) === LISTED.length + 1,
    );
    await screenshot(t, page, 'status-node-down');
  });
});
