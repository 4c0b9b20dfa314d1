/**
 * `_prometheus`, `_stats`, `_system`, request ids and logs on a real three-node cluster:
 * the exposition parses, carries CouchDB's and Divan's names with the right types and never a
 * database name, and its counters move with writes, fsyncs and elections.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';
import {
  ADMIN,
  TestCluster as Cluster,
  type TestCluster,
  type TestNode,
  waitFor,
} from '../support/cluster.js';
import { type Exposition, parseExposition, sampleSum } from './exposition.js';

const AUTHORIZATION = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
/** A database name that must never show up in the exposition. */
const DB = 'metrics-private-name';
const WRITES = 5;
/** More single writes than the 20 retained entries. */
const SNAPSHOT_WRITES = 40;

async function scrape(cluster: TestCluster, node: TestNode, path = '/_node/_local/_prometheus') {
  const result = await cluster.http(node, 'GET', path);
  assert.equal(result.status, 200, result.body);
  return { exposition: parseExposition(result.body), result };
}

const EXPECTED_TYPES: readonly (readonly [string, string])[] = [
  ['couchdb_httpd_request_methods', 'counter'],
  ['couchdb_httpd_status_codes', 'counter'],
  ['couchdb_httpd_requests_total', 'counter'],
  ['couchdb_httpd_clients_requesting_changes', 'gauge'],
  ['couchdb_open_databases', 'gauge'],
  ['couchdb_database_count', 'gauge'],
  ['couchdb_document_writes_total', 'counter'],
  ['couchdb_database_reads_total', 'counter'],
  ['couchdb_fsync_count_total', 'counter'],
  ['divan_fsync_duration_seconds', 'histogram'],
  ['divan_db_commit_duration_seconds', 'histogram'],
  ['divan_http_request_duration_seconds', 'histogram'],
  ['divan_raft_groups', 'gauge'],
  ['divan_raft_groups_without_leader', 'gauge'],
  ['divan_raft_leader_changes_total', 'counter'],
  ['divan_raft_elections_total', 'counter'],
  ['divan_raft_proposals_committed_total', 'counter'],
  ['divan_raft_proposals_applied_total', 'counter'],
  ['divan_raft_proposals_pending', 'gauge'],
  ['divan_raft_proposals_failed_total', 'counter'],
  ['divan_raft_apply_lag_entries', 'gauge'],
  ['divan_raft_commit_latency_seconds', 'histogram'],
  ['divan_raft_snapshots_total', 'counter'],
  ['divan_raft_peer_connected', 'gauge'],
  ['divan_raft_peer_rtt_seconds', 'gauge'],
  ['divan_raft_peer_sent_bytes_total', 'counter'],
  ['process_cpu_user_seconds_total', 'counter'],
  ['nodejs_eventloop_lag_seconds', 'gauge'],
];

function assertTypes(exposition: Exposition): void {
  for (const [name, type] of EXPECTED_TYPES) {
    assert.equal(exposition.types.get(name), type, `type of ${name}`);
  }
}

test('node metrics on a cluster', async (t) => {
  // A short log, so that a follower away for a few writes needs a snapshot.
  const cluster = await Cluster.start(t, { extraArgs: ['--log-retention-entries', '20'] });
  const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(n1, 'PUT', `/${DB}`)).status, 201);
  const leader = await cluster.leaderOf(DB);

  await t.test('prometheus needs an admin', async () => {
    const anonymous = await cluster.http(n1, 'GET', '/_node/_local/_prometheus', undefined, {
      auth: false,
    });
    assert.equal(anonymous.status, 401);
  });

  await t.test('exposition names and types', async () => {
    const { exposition, result } = await scrape(cluster, n1);
    assert.match(String(result.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assertTypes(exposition);
    const buckets = exposition.samples.filter(
      (sample) => sample.name === 'divan_fsync_duration_seconds_bucket',
    );
    assert.ok(
      buckets.some((sample) => sample.labels.le === '0.0001'),
      'a 0.1 ms bucket',
    );
    assert.equal(sampleSum(exposition, 'divan_raft_peer_connected'), 2, 'both peers connected');
    assert.ok(!result.body.includes(DB), 'no database name in the exposition');
  });

  await t.test('local and real node names', async () => {
    const byName = await cluster.http(n2, 'GET', '/_node/n2/_prometheus');
    assert.equal(byName.status, 200);
    assertTypes(parseExposition(byName.body));
    const self = await cluster.http(n1, 'GET', '/_node/_local');
    assert.deepEqual(self.json, { name: 'n1' });
    await waitFor('n3 answering through n1', async () => {
      const forwarded = await cluster.http(n1, 'GET', '/_node/n3');
      return forwarded.status === 200 && (forwarded.json as { name: string }).name === 'n3';
    });
    const unknown = await cluster.http(n1, 'GET', '/_node/n9/_prometheus');
    assert.equal(unknown.status, 404);
  });

  await t.test('counters move with writes and fsyncs', async () => {
    const before = await Promise.all(cluster.nodes.map((node) => scrape(cluster, node)));
    const docs = Array.from({ length: WRITES }, (_, i) => ({ _id: `doc-${i}`, i }));
    const write = await cluster.http(leader, 'POST', `/${DB}/_bulk_docs`, { docs });
    assert.equal(write.status, 201, write.body);
    const read = await cluster.http(leader, 'GET', `/${DB}/doc-0`);
    assert.equal(read.status, 200);
    const missing = await cluster.http(leader, 'GET', `/${DB}/no-such-doc`);
    assert.equal(missing.status, 404);

    const leaderIndex = cluster.nodes.indexOf(leader);
    const old = before[leaderIndex]!.exposition;
    const now = (await scrape(cluster, leader)).exposition;
    const grew = (name: string, labels: Record<string, string> = {}) =>
      sampleSum(now, name, labels) - sampleSum(old, name, labels);
    assert.equal(grew('couchdb_document_writes_total'), WRITES);
    assert.ok(grew('couchdb_database_reads_total') >= 1, 'database reads');
    assert.ok(grew('couchdb_httpd_request_methods', { method: 'POST' }) >= 1, 'POST requests');
    assert.ok(grew('couchdb_httpd_status_codes', { code: '404' }) >= 1, '404 responses');
    assert.ok(grew('couchdb_httpd_bulk_requests_total') >= 1, 'bulk requests');
    assert.ok(grew('divan_raft_commit_latency_seconds_count') >= 1, 'commit latency observed');
    assert.ok(grew('divan_raft_proposals_applied_total') >= 1, 'entries applied');

    // Every replica persists the entry, so every node syncs and commits.
    await waitFor('fsyncs on every node', async () => {
      const after = await Promise.all(cluster.nodes.map((node) => scrape(cluster, node)));
      return after.every((scraped, i) => {
        const previous = before[i]!.exposition;
        return (
          sampleSum(scraped.exposition, 'couchdb_fsync_count_total') >
            sampleSum(previous, 'couchdb_fsync_count_total') &&
          sampleSum(scraped.exposition, 'divan_fsync_duration_seconds_count') >
            sampleSum(previous, 'divan_fsync_duration_seconds_count') &&
          sampleSum(scraped.exposition, 'divan_db_commit_duration_seconds_count') >
            sampleSum(previous, 'divan_db_commit_duration_seconds_count')
        );
      });
    });
  });

  await t.test('changes clients gauge', async () => {
    const feed = request(`${n3.url}/${DB}/_changes?feed=longpoll&since=now&timeout=20000`, {
      headers: { authorization: AUTHORIZATION },
    });
    await waitFor('a changes client', async () => {
      const { exposition } = await scrape(cluster, n3);
      return sampleSum(exposition, 'couchdb_httpd_clients_requesting_changes') === 1;
    });
    await cluster.http(leader, 'PUT', `/${DB}/wake-feed`, { wake: true });
    const response = await feed;
    await response.body.text();
    await waitFor('no changes client', async () => {
      const { exposition } = await scrape(cluster, n3);
      return sampleSum(exposition, 'couchdb_httpd_clients_requesting_changes') === 0;
    });
  });

  await t.test('elections and leader changes', async () => {
    const survivors = cluster.nodes.filter((node) => node !== leader);
    const before = await Promise.all(survivors.map((node) => scrape(cluster, node)));
    await cluster.kill(leader);
    await cluster.leaderOf(DB);
    const after = await Promise.all(survivors.map((node) => scrape(cluster, node)));
    const total = (scraped: typeof after, name: string) =>
      scraped.reduce((sum, { exposition }) => sum + sampleSum(exposition, name), 0);
    assert.ok(
      total(after, 'divan_raft_elections_total') > total(before, 'divan_raft_elections_total'),
      'elections counted',
    );
    assert.ok(
      total(after, 'divan_raft_leader_changes_total') >
        total(before, 'divan_raft_leader_changes_total'),
      'leader changes counted',
    );
    const connected = after.map(({ exposition }) =>
      sampleSum(exposition, 'divan_raft_peer_connected'),
    );
    await waitFor('the dead peer shown disconnected', async () => {
      const now = await Promise.all(survivors.map((node) => scrape(cluster, node)));
      return now.every(
        ({ exposition }) => sampleSum(exposition, 'divan_raft_peer_connected') === 1,
      );
    });
    assert.ok(connected.length === 2);
    await cluster.startNode(leader);
  });

  await t.test('snapshots counted', async () => {
    const current = await cluster.leaderOf(DB);
    const far = cluster.nodes.find((node) => node !== current && node.process !== null)!;
    await cluster.kill(far);
    for (let i = 0; i < SNAPSHOT_WRITES; i++) {
      const write = await cluster.httpRetry(current, 'PUT', `/${DB}/snap-${i}`, { i });
      assert.equal(write.status, 201, write.body);
    }
    await cluster.startNode(far);
    await waitFor('a snapshot counted on both sides', async () => {
      const [received, sent] = await Promise.all([scrape(cluster, far), scrape(cluster, current)]);
      return (
        sampleSum(received.exposition, 'divan_raft_snapshots_total', { direction: 'received' }) >=
          1 && sampleSum(sent.exposition, 'divan_raft_snapshots_total', { direction: 'sent' }) >= 1
      );
    });
    const status = await cluster.http(far, 'GET', '/_divan/cluster?local=true');
    const local = status.json as { transfers: unknown[]; summary: { snapshot_transfers: number } };
    assert.deepEqual(local.transfers, [], 'no transfer left running');
    assert.equal(local.summary.snapshot_transfers, 0);
  });

  await t.test('stats in couchdb shape', async () => {
    const stats = await cluster.http(n1, 'GET', '/_node/_local/_stats');
    assert.equal(stats.status, 200);
    const body = stats.json as Record<string, Record<string, Record<string, unknown>>>;
    const get = body.couchdb!.httpd_request_methods!.GET as { value: number; type: string };
    assert.equal(get.type, 'counter');
    assert.ok(get.value > 0);
    const time = await cluster.http(n1, 'GET', '/_node/n1/_stats/couchdb/request_time');
    const leaf = time.json as { type: string; value: Record<string, unknown> };
    assert.equal(leaf.type, 'histogram');
    assert.ok((leaf.value.n as number) > 0, 'requests in the window');
    assert.deepEqual(
      (leaf.value.percentile as [number, number][]).map(([label]) => label),
      [50, 75, 90, 95, 99, 999],
    );
    const fsyncs = await cluster.http(n1, 'GET', '/_node/_local/_stats/fsync/count');
    assert.equal((fsyncs.json as { type: string }).type, 'counter');
    const unknown = await cluster.http(n1, 'GET', '/_node/_local/_stats/couchdb/no_such_stat');
    assert.equal(unknown.status, 200);
    assert.equal(unknown.body.trim(), 'null');
  });

  await t.test('system in couchdb shape', async () => {
    const system = await cluster.http(n2, 'GET', '/_node/n2/_system');
    assert.equal(system.status, 200);
    const body = system.json as Record<string, unknown>;
    assert.equal(typeof body.uptime, 'number');
    const memory = body.memory as Record<string, number>;
    assert.ok(memory.processes! > 0, 'heap size');
    assert.ok(memory.processes_used! > 0, 'heap used');
    assert.equal(typeof (body.event_loop_delay_ms as Record<string, number>).p99, 'number');
    assert.equal(typeof body.process_count, 'number');
  });

  await t.test('request ids in replies and logs', async () => {
    const reply = await cluster.http(n2, 'GET', `/${DB}/absent-doc`);
    assert.equal(reply.status, 404);
    const id = reply.headers['x-couch-request-id'];
    assert.match(String(id), /^[0-9a-f]{10}$/);
    await waitFor('the request log line', () => {
      const lines = readFileSync(join(n2.dataDir, 'divan.log'), 'utf8').split('\n');
      return lines.some((line) => {
        if (!line.includes(String(id))) return false;
        const record = JSON.parse(line) as Record<string, unknown>;
        return (
          record.reqId === id &&
          record.method === 'GET' &&
          record.path === `/${DB}/absent-doc` &&
          record.status === 404 &&
          record.user === ADMIN.name &&
          record.db === DB &&
          typeof record.durationMs === 'number'
        );
      });
    });
  });

  await t.test('raft events in logs', () => {
    const records = readFileSync(join(n1.dataDir, 'divan.log'), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const campaign = records.find((record) => record.msg === 'starting campaign');
    assert.ok(campaign !== undefined, 'a campaign is logged');
    assert.equal(campaign.level, 30, 'at info');
    assert.equal(typeof campaign.reason, 'string');
    assert.equal(typeof campaign.term, 'number');
    assert.equal(typeof campaign.group, 'string');
    const change = records.find(
      (record) => record.msg === 'raft role changed' || record.msg === 'became leader',
    );
    assert.ok(change !== undefined, 'role changes are logged');
    assert.ok('leader' in change, 'leader logged');
    assert.ok('term' in change, 'term logged');
    assert.ok('group' in change, 'group logged');
  });
});
