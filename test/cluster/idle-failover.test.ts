/**
 * Failover of idle databases on real node processes. When the node leading a database that
 * wrote nothing lately dies, the survivors wait before they campaign, so that busy databases
 * elect first. A request for such a database starts its campaign at once; without requests,
 * the wait ends by itself. Either way no acknowledged write is lost.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FAILOVER_IDLE_AFTER_MS } from '../../src/cluster/node.js';
import { TestCluster, type TestNode, waitFor } from '../support/cluster.js';

const WOKEN = 'woken';
const LEFT_ALONE = 'left-alone';
const WAKE_MESSAGE = 'a request starts the failover of an idle group';

test('idle databases elect a leader', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1] = cluster.nodes;
  for (const db of [WOKEN, LEFT_ALONE]) {
    assert.equal((await cluster.httpRetry(n1!, 'PUT', `/${db}`)).status, 201);
    const via = await cluster.leaderOf(db);
    const moved = await cluster.http(via, 'POST', `/${db}/_raft/transfer`, { to: n1!.name });
    assert.equal(moved.status, 200, moved.body);
    assert.equal((await cluster.leaderOf(db)).name, n1!.name);
    const written = await cluster.http(n1!, 'PUT', `/${db}/before`, { db });
    assert.equal(written.status, 201, written.body);
  }
  // Both databases are idle from here on.
  await sleep(FAILOVER_IDLE_AFTER_MS + 500);
  await cluster.kill(n1!);
  const survivors = cluster.nodes.filter((node) => node !== n1);

  // A write waits for the failover it starts, and succeeds without a retry.
  const woken = await cluster.http(survivors[0]!, 'PUT', `/${WOKEN}/after`, { db: WOKEN });
  assert.equal(woken.status, 201, woken.body);

  // No request reaches the other database: `_raft` reads the local state and wakes nothing.
  await waitFor(`a new leader of ${LEFT_ALONE}`, async () => {
    const statuses = await Promise.all(survivors.map((node) => cluster.raft(node, LEFT_ALONE)));
    return statuses.every((status) => status.leader !== null && status.leader !== n1!.name);
  });

  const wakes = survivors.flatMap((node) => logLines(node, WAKE_MESSAGE));
  assert.ok(
    wakes.some((line) => line.db === WOKEN),
    `a survivor logs that the write started the failover of ${WOKEN}`,
  );
  assert.ok(
    wakes.every((line) => line.db !== LEFT_ALONE),
    `no request started the failover of ${LEFT_ALONE}`,
  );

  for (const db of [WOKEN, LEFT_ALONE]) {
    const read = await cluster.httpRetry(survivors[1]!, 'GET', `/${db}/before`);
    assert.equal(read.status, 200, `${db}: ${read.body}`);
  }
  const after = await cluster.httpRetry(survivors[1]!, 'GET', `/${WOKEN}/after`);
  assert.equal(after.status, 200, after.body);
});

/** Returns the JSON lines of a node's log whose message is `message`. */
function logLines(node: TestNode, message: string): Array<Record<string, unknown>> {
  return readFileSync(join(node.dataDir, 'divan.log'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(message))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === message);
}
