/**
 * A fault-injecting TCP proxy for the peer connection of one pair of nodes. The node whose
 * name sorts first (the dialer) reaches the other node's peer port through this proxy, so the
 * proxy carries every byte of that pair: "forward" is dialer to acceptor, "backward" the
 * reverse.
 *
 * Faults, which combine:
 * - drop a direction: its bytes are read and discarded, silently, as a network that loses
 *   packets would; the sockets stay open, so only liveness timeouts notice;
 * - refuse: every connection is closed at once and new ones are closed on accept, so both
 *   nodes see the connection end (the fast path of failure detection);
 * - delay: each chunk is held `delayMs` before it is forwarded, in order.
 *
 * Invariant: a stream that lost bytes is never forwarded again. Dropping may cut a frame in
 * the middle, so when a dropped direction heals every connection open during the drop is
 * closed and the nodes reconnect on clean streams.
 *
 * Listens on 127.0.0.1 only and dials only the target port on 127.0.0.1.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export type ProxyDirection = 'forward' | 'backward';

/** The fault state of a proxy; every field off is a healthy link. */
export interface ProxyFaults {
  readonly dropForward: boolean;
  readonly dropBackward: boolean;
  readonly refuse: boolean;
  /** Added latency per chunk, in ms; 0 forwards at once. */
  readonly delayMs: number;
}

export const HEALTHY: ProxyFaults = {
  dropForward: false,
  dropBackward: false,
  refuse: false,
  delayMs: 0,
};

/** Bytes and connections seen, for the report. */
export interface ProxyCounters {
  connections: number;
  refusedConnections: number;
  forwardedBytes: number;
  droppedBytes: number;
}

interface Pair {
  readonly client: Socket;
  readonly target: Socket;
  /**
   * The directions that lost a byte: such a direction never forwards again, and the pair is
   * closed when the drop heals.
   */
  readonly tainted: Set<ProxyDirection>;
}

/** Chunks waiting for their delay, in arrival order, drained by one timer. */
class DelayQueue {
  readonly #items: { due: number; chunk: Buffer }[] = [];
  #timer: NodeJS.Timeout | null = null;

  constructor(private readonly deliver: (chunk: Buffer) => void) {}

  push(chunk: Buffer, delayMs: number): void {
    this.#items.push({ due: Date.now() + delayMs, chunk });
    this.#arm();
  }

  /** Delivers everything still queued at once (the delay was lifted). */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const item of this.#items.splice(0)) this.deliver(item.chunk);
  }

  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#items.length = 0;
  }

  #arm(): void {
    if (this.#timer !== null || this.#items.length === 0) return;
    const wait = Math.max(0, this.#items[0]!.due - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = null;
      const now = Date.now();
      while (this.#items.length > 0 && this.#items[0]!.due <= now) {
        this.deliver(this.#items.shift()!.chunk);
      }
      this.#arm();
    }, wait);
  }
}

export class FaultProxy {
  readonly #server: Server;
  readonly #pairs = new Set<Pair>();
  readonly #queues = new Map<Pair, { forward: DelayQueue; backward: DelayQueue }>();
  #faults: ProxyFaults = HEALTHY;
  #closed = false;
  readonly counters: ProxyCounters = {
    connections: 0,
    refusedConnections: 0,
    forwardedBytes: 0,
    droppedBytes: 0,
  };

  private constructor(
    server: Server,
    readonly targetPort: number,
  ) {
    this.#server = server;
  }

  /**
   * Starts a proxy on 127.0.0.1 at a free port in front of `targetPort` on 127.0.0.1, outside
   * `reserved`. The nodes' ports are chosen free before the nodes bind them, so a proxy that
   * took one of them would make that node fail to start.
   */
  static async start(
    targetPort: number,
    reserved: ReadonlySet<number> = new Set(),
  ): Promise<FaultProxy> {
    const rejected: Server[] = [];
    try {
      for (;;) {
        const server = createServer({ noDelay: true });
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve());
        });
        const address = server.address();
        if (address !== null && typeof address !== 'string' && reserved.has(address.port)) {
          // Kept listening until a good port is found, so the next listen gets another one.
          rejected.push(server);
          continue;
        }
        const proxy = new FaultProxy(server, targetPort);
        server.on('connection', (client) => proxy.#accept(client));
        return proxy;
      }
    } finally {
      for (const server of rejected) server.close();
    }
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy is not listening');
    return address.port;
  }

  get faults(): ProxyFaults {
    return this.#faults;
  }

  /** Open connection pairs. */
  get connectionCount(): number {
    return this.#pairs.size;
  }

  /** Replaces the fault state; see the header for what each change does to open streams. */
  setFaults(faults: ProxyFaults): void {
    const before = this.#faults;
    this.#faults = faults;
    const dropHealed =
      (before.dropForward && !faults.dropForward) || (before.dropBackward && !faults.dropBackward);
    if (faults.refuse || dropHealed) this.#closeAll(faults.refuse ? 'all' : 'tainted');
    if (before.delayMs > 0 && faults.delayMs === 0) {
      for (const queues of this.#queues.values()) {
        queues.forward.flush();
        queues.backward.flush();
      }
    }
  }

  heal(): void {
    this.setFaults(HEALTHY);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#closeAll('all');
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(client: Socket): void {
    if (this.#faults.refuse || this.#closed) {
      this.counters.refusedConnections++;
      client.destroy();
      return;
    }
    this.counters.connections++;
    client.setNoDelay(true);
    const target = connect({ port: this.targetPort, host: '127.0.0.1', noDelay: true });
    const pair: Pair = { client, target, tainted: new Set() };
    this.#pairs.add(pair);
    const queues = {
      forward: new DelayQueue((chunk) => this.#write(pair, 'forward', chunk)),
      backward: new DelayQueue((chunk) => this.#write(pair, 'backward', chunk)),
    };
    this.#queues.set(pair, queues);
    client.on('data', (chunk: Buffer) => this.#relay(pair, 'forward', chunk, queues.forward));
    target.on('data', (chunk: Buffer) => this.#relay(pair, 'backward', chunk, queues.backward));
    const drop = () => this.#drop(pair);
    for (const socket of [client, target]) {
      socket.on('error', drop);
      socket.on('close', drop);
    }
  }

  #relay(pair: Pair, direction: ProxyDirection, chunk: Buffer, queue: DelayQueue): void {
    const dropped = direction === 'forward' ? this.#faults.dropForward : this.#faults.dropBackward;
    if (dropped || pair.tainted.has(direction)) {
      pair.tainted.add(direction);
      this.counters.droppedBytes += chunk.length;
      return;
    }
    if (this.#faults.delayMs > 0) queue.push(chunk, this.#faults.delayMs);
    else this.#write(pair, direction, chunk);
  }

  #write(pair: Pair, direction: ProxyDirection, chunk: Buffer): void {
    const socket = direction === 'forward' ? pair.target : pair.client;
    if (pair.tainted.has(direction) || socket.destroyed) return;
    this.counters.forwardedBytes += chunk.length;
    socket.write(chunk);
  }

  #drop(pair: Pair): void {
    if (!this.#pairs.delete(pair)) return;
    this.#queues.get(pair)?.forward.clear();
    this.#queues.get(pair)?.backward.clear();
    this.#queues.delete(pair);
    pair.client.destroy();
    pair.target.destroy();
  }

  #closeAll(which: 'all' | 'tainted'): void {
    for (const pair of [...this.#pairs]) {
      if (which === 'all' || pair.tainted.size > 0) this.#drop(pair);
    }
  }
}
