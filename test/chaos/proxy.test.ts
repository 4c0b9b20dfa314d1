/**
 * The fault proxy on real sockets on 127.0.0.1: bytes pass both ways in order, a dropped
 * direction loses bytes while the other still flows, a healed drop closes the broken streams,
 * refusing closes connections at once, and delays keep the order of bytes.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { type TestContext, test } from 'node:test';
import fc from 'fast-check';
import { FaultProxy, HEALTHY } from '../../src/chaos/proxy.js';

/** A server that echoes every byte back, prefixed with nothing. */
async function echoServer(
  t: TestContext,
): Promise<{ server: Server; port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.on('data', (chunk) => socket.write(chunk));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  const address = server.address();
  assert(address !== null && typeof address !== 'string');
  return { server, port: address.port, sockets };
}

async function startProxy(t: TestContext, targetPort: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start(targetPort);
  t.after(() => proxy.close());
  return proxy;
}

async function dial(
  t: TestContext,
  port: number,
): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  t.after(() => socket.destroy());
  return { socket, received: () => text, closed };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test('proxy forwards both ways in order', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.string({ minLength: 1, maxLength: 50 }), { minLength: 1, maxLength: 20 }),
      async (parts) => {
        const client = await dial(t, proxy.port);
        for (const part of parts) client.socket.write(part);
        const expected = parts.join('');
        await until(() => client.received().length >= expected.length, 'the echo');
        assert.equal(client.received(), expected);
        client.socket.destroy();
      },
    ),
    { numRuns: 20 },
  );
});

test('proxy drops one direction only', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  const client = await dial(t, proxy.port);
  client.socket.write('before');
  await until(() => client.received() === 'before', 'the first echo');

  proxy.setFaults({ ...HEALTHY, dropForward: true });
  client.socket.write('lost');
  await until(() => proxy.counters.droppedBytes >= 4, 'the drop');
  // The backward direction still flows: the server speaks first.
  target.sockets[0]!.write('+server');
  await until(() => client.received() === 'before+server', 'the backward bytes');
  assert.equal(client.received(), 'before+server');

  proxy.heal();
  await client.closed;
  assert.equal(proxy.connectionCount, 0, 'a stream that lost bytes is closed at heal');
  const next = await dial(t, proxy.port);
  next.socket.write('after');
  await until(() => next.received() === 'after', 'the echo after healing');
});

test('proxy refuses and closes connections', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  const client = await dial(t, proxy.port);
  proxy.setFaults({ ...HEALTHY, refuse: true });
  await client.closed;
  const refused = connect({ port: proxy.port, host: '127.0.0.1' });
  refused.on('error', () => {});
  await once(refused, 'close');
  assert.equal(proxy.counters.refusedConnections, 1);
  proxy.heal();
  const next = await dial(t, proxy.port);
  next.socket.write('ok');
  await until(() => next.received() === 'ok', 'the echo after refusing');
});

test('proxy delays keep byte order', async (t) => {
  const target = await echoServer(t);
  const proxy = await startProxy(t, target.port);
  proxy.setFaults({ ...HEALTHY, delayMs: 20 });
  const client = await dial(t, proxy.port);
  const parts = Array.from({ length: 30 }, (_, i) => `<${i}>`);
  for (const part of parts) {
    client.socket.write(part);
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Lifting the delay midway flushes what waits, still in order.
  proxy.setFaults(HEALTHY);
  await until(() => client.received().length >= parts.join('').length, 'every delayed byte');
  assert.equal(client.received(), parts.join(''));
});

test('proxy avoids reserved ports', async (t) => {
  // listen(0) takes a port from the kernel's ephemeral range, and six ports in seven of it are
  // reserved. Three proxies that ignored the reservation would all miss it about (1/7)^3 = 0.3%
  // of the time if the kernel picked ports evenly (an estimate).
  let range: number[];
  try {
    const text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    range = text.trim().split(/\s+/).map(Number);
  } catch {
    t.skip('no /proc/sys/net/ipv4/ip_local_port_range on this system');
    return;
  }
  const [low, high] = range as [number, number];
  const reserved = new Set<number>();
  for (let port = low; port <= high; port++) if (port % 7 !== 0) reserved.add(port);
  const { port: targetPort } = await echoServer(t);
  for (let i = 0; i < 3; i++) {
    const proxy = await FaultProxy.start(targetPort, reserved);
    t.after(() => proxy.close());
    assert.equal(reserved.has(proxy.port), false, `proxy port ${proxy.port} is reserved`);
  }
});
