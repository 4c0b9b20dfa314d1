/**
 * The network between the nodes of a chaos run: one `FaultProxy` per pair of nodes, and the
 * member list each node starts with so that its peer traffic goes through those proxies.
 *
 * Peers identify each other by handshake, and only the node whose name sorts first dials, so
 * for a pair (a, b) with a < b, a's member list names the proxy for b and the proxy forwards to
 * b's real peer port; b's member list names a's real port, which b never dials.
 *
 * Faults are expressed over nodes (cut these groups apart, drop what X sends to Y, slow every
 * link of X) and translated to proxy settings. Nothing here knows about processes or HTTP.
 */
import { assert } from '../util/assert.js';
import { FaultProxy, HEALTHY, type ProxyCounters, type ProxyFaults } from './proxy.js';

/** How a cut link fails: silently (bytes lost) or loudly (connections closed and refused). */
export type CutStyle = 'silent' | 'reset';

export interface PeerEndpoint {
  readonly name: string;
  readonly peerPort: number;
}

interface Link {
  /** The dialer: its name sorts first. */
  readonly low: string;
  readonly high: string;
  readonly proxy: FaultProxy;
}

export class ChaosNetwork {
  readonly #links: Link[];
  readonly #nodes: readonly PeerEndpoint[];

  private constructor(nodes: readonly PeerEndpoint[], links: Link[]) {
    this.#nodes = nodes;
    this.#links = links;
  }

  /** Starts one proxy per pair of `nodes`, on none of the `reserved` ports. */
  static async start(
    nodes: readonly PeerEndpoint[],
    reserved: ReadonlySet<number>,
  ): Promise<ChaosNetwork> {
    const links: Link[] = [];
    const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (let i = 0; i < sorted.length; i++) {
      for (let j = i + 1; j < sorted.length; j++) {
        const proxy = await FaultProxy.start(sorted[j]!.peerPort, reserved);
        links.push({ low: sorted[i]!.name, high: sorted[j]!.name, proxy });
      }
    }
    return new ChaosNetwork(nodes, links);
  }

  /** The `--members` value for `name`: peers it dials are reached through their proxy. */
  membersFor(name: string): string {
    return this.#nodes
      .map((member) => {
        const link = this.#link(name, member.name);
        const port = link !== undefined && link.low === name ? link.proxy.port : member.peerPort;
        return `${member.name}@127.0.0.1:${port}`;
      })
      .join(',');
  }

  /** Cuts every link between different groups, both ways. */
  partition(groups: readonly (readonly string[])[], style: CutStyle): void {
    const groupOf = new Map<string, number>();
    groups.forEach((group, index) => {
      for (const name of group) groupOf.set(name, index);
    });
    for (const link of this.#links) {
      if (groupOf.get(link.low) === groupOf.get(link.high)) continue;
      link.proxy.setFaults(cut(link.proxy.faults, style));
    }
  }

  /** Cuts every link of `name`, both ways. */
  isolate(name: string, style: CutStyle): void {
    const others = this.#nodes.map((node) => node.name).filter((other) => other !== name);
    this.partition([[name], others], style);
  }

  /** Drops what `from` sends to `to` (silently); the other direction keeps flowing. */
  dropOneWay(from: string, to: string): void {
    const link = this.#link(from, to);
    assert(link !== undefined, `no link between ${from} and ${to}`);
    const faults = link.proxy.faults;
    link.proxy.setFaults(
      from === link.low ? { ...faults, dropForward: true } : { ...faults, dropBackward: true },
    );
  }

  /** Adds `delayMs` of latency to every link of `name`. */
  slow(name: string, delayMs: number): void {
    for (const link of this.#links) {
      if (link.low !== name && link.high !== name) continue;
      link.proxy.setFaults({ ...link.proxy.faults, delayMs });
    }
  }

  /** Removes every fault from every link. */
  heal(): void {
    for (const link of this.#links) link.proxy.setFaults(HEALTHY);
  }

  /** Totals over all proxies. */
  counters(): ProxyCounters {
    const total: ProxyCounters = {
      connections: 0,
      refusedConnections: 0,
      forwardedBytes: 0,
      droppedBytes: 0,
    };
    for (const { proxy } of this.#links) {
      total.connections += proxy.counters.connections;
      total.refusedConnections += proxy.counters.refusedConnections;
      total.forwardedBytes += proxy.counters.forwardedBytes;
      total.droppedBytes += proxy.counters.droppedBytes;
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all(this.#links.map((link) => link.proxy.close()));
  }

  #link(a: string, b: string): Link | undefined {
    return this.#links.find(
      (link) => (link.low === a && link.high === b) || (link.low === b && link.high === a),
    );
  }
}

function cut(faults: ProxyFaults, style: CutStyle): ProxyFaults {
  if (style === 'reset') return { ...faults, refuse: true };
  return { ...faults, dropForward: true, dropBackward: true };
}
