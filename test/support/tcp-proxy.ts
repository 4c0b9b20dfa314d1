/**
 * A TCP proxy on 127.0.0.1 for tests that put faults between two nodes. It forwards bytes both
 * ways; `swallowReplies(ms)` drops everything the target sends back for a while and then closes
 * the connections, the shape of a connection that breaks after a request left but before its
 * reply arrived.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #server: Server;
  readonly #pairs = new Set<{ client: Socket; target: Socket }>();
  #swallowing = false;
  #swallowedBytes = 0;
  /** Bytes from the target still allowed before every connection is cut; null: no limit. */
  #cutBudget: number | null = null;
  #cuts = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  /** Starts a proxy in front of `targetPort`; resolves with it once listening. */
  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server);
    server.on('connection', (client) => proxy.#accept(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  /** Bytes from the target dropped while swallowing. */
  get swallowedBytes(): number {
    return this.#swallowedBytes;
  }

  /** Drops the target's bytes for `ms`, then closes every connection and forwards again. */
  swallowReplies(ms: number): void {
    this.#swallowing = true;
    setTimeout(() => {
      for (const pair of this.#pairs) {
        pair.client.destroy();
        pair.target.destroy();
      }
      this.#swallowing = false;
    }, ms);
  }

  /** Cuts every connection once `bytes` more bytes have come from the target (once). */
  cutAfter(bytes: number): void {
    this.#cutBudget = bytes;
  }

  /** Times `cutAfter` cut the connections. */
  get cuts(): number {
    return this.#cuts;
  }

  async close(): Promise<void> {
    for (const pair of this.#pairs) {
      pair.client.destroy();
      pair.target.destroy();
    }
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket, targetPort: number): void {
    const target = connect(targetPort, '127.0.0.1');
    const pair = { client, target };
    this.#pairs.add(pair);
    const drop = () => {
      this.#pairs.delete(pair);
      client.destroy();
      target.destroy();
    };
    client.on('data', (chunk) => target.write(chunk));
    target.on('data', (chunk) => {
      if (this.#swallowing) {
        this.#swallowedBytes += chunk.length;
        return;
      }
      client.write(chunk);
      if (this.#cutBudget === null) return;
      this.#cutBudget -= chunk.length;
      if (this.#cutBudget > 0) return;
      this.#cutBudget = null;
      this.#cuts++;
      for (const open of this.#pairs) {
        open.client.destroy();
        open.target.destroy();
      }
    });
    client.on('error', drop);
    target.on('error', drop);
    client.on('close', drop);
    target.on('close', drop);
  }
}
