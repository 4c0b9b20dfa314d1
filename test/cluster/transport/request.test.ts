/**
 * Request/response over real sockets: replies, remote errors, timeouts, a peer dying
 * mid-request, and the classification of failures as not-sent or maybe-delivered.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { RequestError } from '../../../src/cluster/transport/index.js';
import { freePorts } from '../../support/ports.js';
import { createTransport, listenRaw, startCluster, waitFor, waitForMesh } from './harness.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const REQUEST_COUNT = 300;

function isRequestError(
  failure: RequestError['failure'],
  delivery: RequestError['delivery'],
): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof RequestError, `expected a RequestError, got ${String(error)}`);
    assert.equal(error.failure, failure);
    assert.equal(error.delivery, delivery);
    return true;
  };
}

test('requests get their own replies, sync and async', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  cluster.get('n2').onRequest((from, payload) => {
    const { index, binary } = payload as { index: number; binary: Uint8Array };
    const reply = { from, index, size: binary.length };
    if (index % 2 === 0) return reply;
    return new Promise((resolve) => setTimeout(() => resolve(reply), index % 7));
  });
  const replies = await Promise.all(
    Array.from({ length: REQUEST_COUNT }, (_, index) =>
      cluster
        .get('n1')
        .request('n2', { index, binary: new Uint8Array(index) }, { timeoutMs: 10_000 }),
    ),
  );
  replies.forEach((reply, index) => {
    assert.deepEqual(reply, { from: 'n1', index, size: index });
  });
  const stats = cluster.get('n1').stats();
  assert.equal(stats.requests.sent, REQUEST_COUNT);
  assert.equal(stats.requests.failed, 0);
  assert.equal(cluster.get('n2').stats().requests.received, REQUEST_COUNT);
});

test('a large reply travels on the bulk lane', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  const payload = new Uint8Array(3 * MIB).map((_, index) => index % 253);
  cluster.get('n1').onRequest(() => ({ payload }));
  const reply = (await cluster.get('n2').request('n1', 'give', { timeoutMs: 10_000 })) as {
    payload: Uint8Array;
  };
  assert.deepEqual(Uint8Array.from(reply.payload), payload);
  assert.ok(cluster.get('n1').stats().bulk.itemsSent >= 1);
});

test('handler errors and a missing handler reach the requester', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  await assert.rejects(
    cluster.get('n1').request('n2', 'anyone?', { timeoutMs: 10_000 }),
    isRequestError('remote-error', 'maybe-delivered'),
  );
  cluster.get('n2').onRequest((_from, payload) => {
    if (payload === 'sync') throw new Error('sync failure');
    return Promise.reject(new Error('async failure'));
  });
  for (const kind of ['sync', 'async']) {
    await assert.rejects(
      cluster.get('n1').request('n2', kind, { timeoutMs: 10_000 }),
      (error: unknown) => {
        isRequestError('remote-error', 'maybe-delivered')(error);
        assert.match((error as Error).message, new RegExp(`${kind} failure`));
        return true;
      },
    );
  }
  assert.equal(cluster.get('n2').stats().handlerErrors, 2);
});

test('a request with no reply times out as maybe-delivered', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  let served = 0;
  cluster.get('n2').onRequest(() => {
    served += 1;
    return new Promise(() => {});
  });
  await assert.rejects(
    cluster.get('n1').request('n2', 'slow', { timeoutMs: 100 }),
    isRequestError('timeout', 'maybe-delivered'),
  );
  assert.equal(served, 1);
  assert.equal(cluster.get('n1').stats().requests.timedOut, 1);
});

test('a peer dying mid-request fails it as maybe-delivered', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  let served = 0;
  cluster.get('n2').onRequest(() => {
    served += 1;
    return new Promise(() => {});
  });
  const pending = cluster.get('n1').request('n2', 'doomed', { timeoutMs: 60_000 });
  await waitFor(() => served === 1, 'the request to arrive');
  await cluster.get('n2').stop();
  await assert.rejects(pending, isRequestError('connection-closed', 'maybe-delivered'));
});

test('requests that surely never left are not-sent', async (t) => {
  const cluster = await startCluster(t, ['n1'], { extraPeers: { a0: '127.0.0.1:9' } });
  await assert.rejects(
    cluster.get('n1').request('a0', 'nobody', { timeoutMs: 1000 }),
    isRequestError('peer-unavailable', 'not-sent'),
  );
  await assert.rejects(
    cluster.get('n1').request('n9', 'unknown', { timeoutMs: 1000 }),
    isRequestError('peer-unavailable', 'not-sent'),
  );
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(
    cluster.get('n1').request('a0', 'aborted', { timeoutMs: 1000, signal: aborted.signal }),
    isRequestError('aborted', 'not-sent'),
  );
});

test('a request stuck behind a blocked socket times out as not-sent', async (t) => {
  const [rawPort, port] = await freePorts(2);
  const rawPeer = await listenRaw(t, 'z9', rawPort!, false);
  const addresses = { n1: `127.0.0.1:${port}`, z9: `127.0.0.1:${rawPort}` };
  const limits = { budgetBytes: 64 * MIB, socketWindowBytes: 64 * KIB };
  const transport = createTransport('n1', addresses, {
    limits,
    timing: { livenessTimeoutMs: 120_000 },
  });
  t.after(() => transport.stop());
  await transport.start();
  await rawPeer.accepted;
  await waitFor(() => transport.isConnected('z9'), 'the raw peer to connect');

  // Fill the kernel buffers and the socket window, then queue 2 MiB more in the transport.
  const chunk = { chunk: new Uint8Array(256 * KIB) };
  const maxChunks = 1000;
  let previousUsed = 0;
  let stalledTurns = 0;
  for (let sent = 0; sent < maxChunks && stalledTurns < 3; sent++) {
    assert.equal(transport.send('z9', 'bulk', chunk), true);
    await nextTurn();
    const used = transport.stats().budgetUsedBytes;
    // A turn that drained nothing: the kernel buffers and the socket window are full.
    stalledTurns = used >= previousUsed + 256 * KIB && used > 2 * MIB ? stalledTurns + 1 : 0;
    previousUsed = used;
  }
  assert.equal(stalledTurns, 3, 'the socket never blocked');
  for (let extra = 0; extra < 8; extra++) transport.send('z9', 'bulk', chunk);

  const controller = new AbortController();
  const aborted = transport.request('z9', 'behind', {
    timeoutMs: 60_000,
    signal: controller.signal,
  });
  const timedOut = transport.request('z9', 'behind too', { timeoutMs: 100 });
  await nextTurn();
  controller.abort();
  await assert.rejects(aborted, isRequestError('aborted', 'not-sent'));
  await assert.rejects(timedOut, isRequestError('timeout', 'not-sent'));

  const closing = transport.request('z9', 'lost with the connection', { timeoutMs: 60_000 });
  await transport.stop();
  await assert.rejects(closing, isRequestError('stopped', 'not-sent'));
});
