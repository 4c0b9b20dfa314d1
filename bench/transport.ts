/**
 * `npm run bench -- transport [--quick]`: peer transport throughput on loopback. The sender
 * runs on the main thread and the receiver in a worker thread, so each has its own event loop
 * (and core, on a 2-core machine). Scenarios: small control messages per second, bulk MiB per
 * second with 1 MiB messages, and request/response round trips per second with 64 in flight.
 * Every scenario is bounded by a message count and a deadline.
 */
import { once } from 'node:events';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Transport } from '../src/cluster/transport/index.js';
import { silentLogger } from '../src/util/log.js';
import { freePorts } from '../test/support/ports.js';
import { BenchReport, progress } from './report.js';

const SECRET = Buffer.from('transport-benchmark-secret-000000', 'utf8');
const MIB = 1024 * 1024;
const DEADLINE_MS = 60_000;
const MESSAGES_PER_TURN = 1000;
const REQUESTS_IN_FLIGHT = 64;

interface Sizes {
  controlMessages: number;
  bulkMessages: number;
  requests: number;
}

const fullSizes: Sizes = { controlMessages: 1_000_000, bulkMessages: 1024, requests: 100_000 };
const quickSizes: Sizes = { controlMessages: 100_000, bulkMessages: 128, requests: 10_000 };

interface ReceiverSetup {
  addresses: Record<string, string>;
}

/** Returns a Raft-like heartbeat: a group id, term, indexes and a type. */
function smallMessage(sequence: number): unknown {
  return {
    group: '6f1c2a0e-8d4b-4e8a-9a53-2b7c1d9e4f60',
    type: 'heartbeat',
    term: 7,
    commit: sequence,
    from: 'n1',
  };
}

function createTransport(nodeId: string, addresses: Record<string, string>): Transport {
  return new Transport({
    nodeId,
    listen: addresses[nodeId]!,
    peers: addresses,
    secret: SECRET,
    logger: silentLogger,
  });
}

/** Runs the receiver in the worker: counts messages per lane and replies to requests. */
async function runReceiver(setup: ReceiverSetup): Promise<void> {
  const port = parentPort!;
  const transport = createTransport('n2', setup.addresses);
  const received = { control: 0, bulk: 0, bulkBytes: 0 };
  transport.onMessage((_from, message, lane) => {
    received[lane] += 1;
    if (lane === 'bulk') received.bulkBytes += (message as { chunk: Uint8Array }).chunk.length;
  });
  transport.onRequest((_from, payload) => ({ echo: (payload as { index: number }).index }));
  port.on('message', (command: string) => {
    if (command === 'counts') port.postMessage({ ...received });
    if (command === 'stop') void transport.stop().then(() => port.close());
  });
  await transport.start();
  port.postMessage('ready');
}

async function countsOf(worker: Worker): Promise<{ control: number; bulk: number }> {
  worker.postMessage('counts');
  const [counts] = await once(worker, 'message');
  return counts as { control: number; bulk: number };
}

async function waitForCount(
  worker: Worker,
  lane: 'control' | 'bulk',
  count: number,
  deadline: number,
): Promise<void> {
  while ((await countsOf(worker))[lane] < count) {
    if (Date.now() > deadline) throw new Error(`deadline passed waiting for ${lane} messages`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function benchControl(sender: Transport, worker: Worker, count: number): Promise<number> {
  const deadline = Date.now() + DEADLINE_MS;
  const start = performance.now();
  let sent = 0;
  while (sent < count) {
    const end = Math.min(count, sent + MESSAGES_PER_TURN);
    while (sent < end && sender.send('n2', 'control', smallMessage(sent))) sent += 1;
    await nextTurn();
    if (Date.now() > deadline) throw new Error('deadline passed sending control messages');
  }
  await waitForCount(worker, 'control', count, deadline);
  return count / ((performance.now() - start) / 1000);
}

async function benchBulk(sender: Transport, worker: Worker, count: number): Promise<number> {
  const deadline = Date.now() + DEADLINE_MS;
  const message = { chunk: new Uint8Array(MIB) };
  const start = performance.now();
  for (let sent = 0; sent < count; sent++) {
    while (!sender.send('n2', 'bulk', message)) await sender.whenWritable('n2');
    if (Date.now() > deadline) throw new Error('deadline passed sending bulk messages');
  }
  await waitForCount(worker, 'bulk', count, deadline);
  return count / ((performance.now() - start) / 1000);
}

async function benchRequests(sender: Transport, count: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  const loop = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      await sender.request('n2', { index }, { timeoutMs: DEADLINE_MS });
    }
  };
  await Promise.all(Array.from({ length: REQUESTS_IN_FLIGHT }, loop));
  return count / ((performance.now() - start) / 1000);
}

export async function main(args: string[]): Promise<void> {
  const sizes = args.includes('--quick') ? quickSizes : fullSizes;
  const [senderPort, receiverPort] = await freePorts(2);
  const addresses = { n1: `127.0.0.1:${senderPort}`, n2: `127.0.0.1:${receiverPort}` };
  const worker = new Worker(new URL(import.meta.url), { workerData: { addresses } });
  const [ready] = await once(worker, 'message');
  if (ready !== 'ready') throw new Error('receiver did not start');
  const sender = createTransport('n1', addresses);
  await sender.start();
  while (!sender.isConnected('n2')) await new Promise((resolve) => setTimeout(resolve, 5));

  const report = new BenchReport('transport');
  progress(`control: ${sizes.controlMessages} small messages`);
  const controlRate = await benchControl(sender, worker, sizes.controlMessages);
  report.measure('loopback control', 'messages per second', 'msg/s', controlRate);
  progress(`bulk: ${sizes.bulkMessages} messages of 1 MiB`);
  const bulkRate = await benchBulk(sender, worker, sizes.bulkMessages);
  report.measure('loopback bulk 1 MiB', 'throughput', 'MiB/s', bulkRate);
  progress(`requests: ${sizes.requests} with ${REQUESTS_IN_FLIGHT} in flight`);
  const requestRate = await benchRequests(sender, sizes.requests);
  report.measure('loopback request/response', 'round trips per second', 'req/s', requestRate);
  const stats = sender.stats();
  const itemsSent = stats.control.itemsSent + stats.bulk.itemsSent;
  report.measure('loopback all', 'items per socket write', 'ratio', itemsSent / stats.socketWrites);
  report.save({ sizes });

  worker.postMessage('stop');
  await sender.stop();
  await once(worker, 'exit');
}

if (!isMainThread) await runReceiver(workerData as ReceiverSetup);
