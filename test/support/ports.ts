/** Free TCP ports on 127.0.0.1, chosen by the kernel so parallel test files never collide. */
import { createServer } from 'node:net';

/** Returns a port that was free a moment ago; bind it soon. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('listen returned no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Returns `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Returns the first of `count` consecutive ports that were all free a moment ago. */
export async function freePortRange(count: number): Promise<number> {
  const MIN_PORT = 20_000;
  const SPAN = 30_000;
  const ATTEMPTS = 50;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const base = MIN_PORT + Math.floor(Math.random() * SPAN);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
