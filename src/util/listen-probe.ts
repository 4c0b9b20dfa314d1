/**
 * A bind test for an address a process is about to listen on. The address may be taken again
 * between the test and the real listen, so callers still handle the listen's own error.
 */
import { createServer } from 'node:net';

/** Binds `host:port` for a moment and returns the bind error, or null when it could bind. */
export function probeListen(host: string, port: number): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error));
    server.listen(port, host, () => server.close(() => resolve(null)));
  });
}
