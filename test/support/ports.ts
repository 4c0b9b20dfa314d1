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
