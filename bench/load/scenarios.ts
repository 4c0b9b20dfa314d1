/**
 * The seven scenarios of the cluster benchmark, run the same way against any `BenchSystem`:
 *
 * 1. one client, sequential writes, sent to the leader;
 * 2. 64 clients spread over all nodes (client i sends to node i mod N), writes;
 * 3. 16 clients, batches of 128 documents per request (etcd: a txn of 128 puts);
 * 4. 64 clients, linearizable reads of documents written in scenario 2;
 * 5. 64 clients over 100 databases (etcd: 100 key prefixes), writes;
 * 6. failover: the leader SIGKILLed 20 times under the scenario-2 load;
 * 7. catch-up: a follower stopped (SIGTERM) for 100,000 writes, then restarted.
 * Scenario 2 also has an open-loop variant at a fixed rate, to compare latency at one load.
 *
 * Every write carries a new key and a `VALUE_BYTES` value. Each run records the load result
 * (throughput, HDR latency, status census), CPU seconds and peak resident memory per node
 * (from /proc), and the leader changes during the run: the rise of the group's Raft term,
 * summed over the run's namespaces. Before each run, `sync` writes out the page cache, so a
 * system that syncs does not pay for dirty pages that another left behind.
 *
 * In scenario 6 clients stop sending to a node the moment the benchmark kills it and send to
 * it again once it serves, as a client holding a list of endpoints would after a connection
 * error; in-flight requests to the killed node fail and are counted.
 */
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { assert } from '../../src/util/assert.js';
import { type NodeUsage, ResourceMeter } from '../peers/resources.js';
import type { BenchNode, BenchSystem } from '../peers/system.js';
import { progress } from '../report.js';
import {
  type LoadMode,
  type LoadResult,
  type Operation,
  type ResponseEvent,
  runLoad,
} from './generator.js';
import { within } from './timeout.js';
import { KeySequence, valueFor } from './workload.js';

const MS_PER_SECOND = 1000;
/** Keys of scenario-2 writes kept for scenario 4 to read. */
const MAX_READ_KEYS = 200_000;
/** Pause after a killed leader's node serves again, before the next kill. */
const FAILOVER_SETTLE_MS = 500;
/** Load before the first kill, so the cluster is busy when it happens. */
const FAILOVER_WARMUP_MS = 1000;
const LEADER_TIMEOUT_MS = 30_000;
const CATCH_UP_POLL_MS = 50;
/** A multiplier, coprime with any realistic key count, that spreads reads over the keys. */
const READ_STRIDE = 7919;

/** Sizes and bounds of each scenario's runs. */
export interface ScenarioSizes {
  /** Time bound of the runs of scenarios 1 to 5 and the open-loop run. */
  readonly runSeconds: number;
  /**
   * Unmeasured load before each of those runs, the same operation with the same clients, so
   * that no system is measured while it starts up (a JIT compiler still tiering up, caches
   * still cold). Every system gets the same warm-up.
   */
  readonly warmUpSeconds: number;
  /**
   * Unmeasured scenario-2 load once per system, before its first scenario. The warm-up of
   * each run is too short for a JIT compiler to settle: on a fresh 3-node Divan cluster a
   * node's CPU per write kept falling for about 25 s of scenario-2 load (docs/benchmarks.md,
   * eighth round). Every system gets the same burn-in.
   */
  readonly burnInSeconds: number;
  /** Request bound of those runs (the time bound ends them first on this machine). */
  readonly runRequests: number;
  readonly clients: number;
  readonly bulkClients: number;
  readonly bulkDocuments: number;
  readonly databases: number;
  readonly failoverKills: number;
  /** Maximum wait for the first successful write after a kill. */
  readonly failoverWaitSeconds: number;
  readonly catchUpWrites: number;
  /** Time bound of writing `catchUpWrites` while the follower is down. */
  readonly catchUpWriteSeconds: number;
  /** Maximum wait for the restarted follower to apply what it missed. */
  readonly catchUpWaitSeconds: number;
  readonly requestTimeoutMs: number;
}

export const FULL_SIZES: ScenarioSizes = {
  runSeconds: 10,
  warmUpSeconds: 3,
  burnInSeconds: 30,
  runRequests: 2_000_000,
  clients: 64,
  bulkClients: 16,
  bulkDocuments: 128,
  databases: 100,
  failoverKills: 20,
  failoverWaitSeconds: 20,
  catchUpWrites: 100_000,
  // At the 300-500 writes/s Divan reaches here, 100,000 writes take 200-330 s.
  catchUpWriteSeconds: 480,
  catchUpWaitSeconds: 300,
  requestTimeoutMs: 15_000,
};

/** Short versions of every scenario, for `--quick`. */
export const QUICK_SIZES: ScenarioSizes = {
  ...FULL_SIZES,
  runSeconds: 0.5,
  warmUpSeconds: 0.2,
  burnInSeconds: 0,
  databases: 10,
  failoverKills: 1,
  failoverWaitSeconds: 5,
  catchUpWrites: 1000,
  catchUpWriteSeconds: 30,
  catchUpWaitSeconds: 30,
  requestTimeoutMs: 2000,
};

/** One measured run of one scenario on one system. */
export interface RunRecord {
  readonly scenario: string;
  readonly system: string;
  readonly load: LoadResult;
  readonly usage: readonly NodeUsage[];
  /** Rise of the Raft term during the run; null for a system without Raft. */
  readonly leaderChanges: number | null;
  /** CPU seconds of all nodes per 1,000 successful items. */
  readonly cpuSecondsPerThousand: number;
  readonly maxPeakResidentBytes: number;
}

export interface FailoverResult {
  readonly run: RunRecord;
  /** Per kill: ms from SIGKILL to the first successful write sent after it, or null. */
  readonly recoveriesMs: ReadonlyArray<number | null>;
  readonly killedNodes: readonly string[];
}

export interface CatchUpResult {
  readonly run: RunRecord;
  readonly follower: string;
  /** The commit index the follower had to apply. */
  readonly targetIndex: number;
  /** Seconds from the restart (spawn) to applying `targetIndex`, and from serving HTTP. */
  readonly secondsFromRestart: number | null;
  readonly secondsFromServing: number | null;
  readonly snapshotsReceived: number;
}

/** The scenarios of one system; scenario 4 reads the keys scenario 2 wrote. */
export class ScenarioRunner {
  /** Keys of acknowledged scenario-2 writes, for scenario 4. */
  readonly #written: string[] = [];
  readonly #down = new Set<BenchNode>();

  constructor(
    readonly system: BenchSystem,
    readonly sizes: ScenarioSizes,
    readonly database: string,
  ) {}

  /** Namespaces of scenario 5. */
  static manyDatabases(count: number): string[] {
    return Array.from({ length: count }, (_, i) => `bench-many-${String(i).padStart(3, '0')}`);
  }

  #liveNodes(): BenchNode[] {
    return this.system.nodes.filter((node) => node.process.running && !this.#down.has(node));
  }

  #nodeFor(client: number): BenchNode {
    const live = this.#liveNodes();
    assert(live.length > 0, `${this.system.name}: no live node to send to`);
    return live[client % live.length]!;
  }

  /** Single writes, each of a new key: every call draws a new key prefix. */
  #writes(
    namespaceOf: (index: number) => string,
    nodeOf: (client: number) => BenchNode,
    keys = new KeySequence(),
  ) {
    const system = this.system;
    const operation: Operation = {
      successStatus: system.writeStatus,
      build: (index, client) =>
        system.writeRequest(nodeOf(client), namespaceOf(index), keys.key(index), valueFor(index)),
    };
    return operation;
  }

  /** Runs the burn-in: scenario-2 writes, unmeasured, for `burnInSeconds`. */
  async burnIn(): Promise<LoadResult> {
    return runLoad(
      this.#writes(
        () => this.database,
        (client) => this.#nodeFor(client),
      ),
      {
        label: `${this.system.name} burn-in`,
        mode: 'closed',
        clients: this.sizes.clients,
        maxRequests: this.sizes.runRequests,
        maxSeconds: this.sizes.burnInSeconds,
        requestTimeoutMs: this.sizes.requestTimeoutMs,
      },
    );
  }

  /** Scenario 1: one client writing to the leader. */
  async sequentialWrites(): Promise<RunRecord> {
    const leader = await this.system.leader(this.database, LEADER_TIMEOUT_MS);
    const operation = () =>
      this.#writes(
        () => this.database,
        () => leader,
      );
    return this.#measured('1', [this.database], operation, 'closed', 1);
  }

  /** Scenario 2: writes from many clients over all nodes; keeps the keys for scenario 4. */
  async spreadWrites(): Promise<RunRecord> {
    // Each run (the warm-up, then the measured one) writes keys of a new sequence. The keys
    // kept for scenario 4 are those of the last run, the measured one.
    let keys = new KeySequence();
    const operation = () => {
      keys = new KeySequence();
      return this.#writes(
        () => this.database,
        (client) => this.#nodeFor(client),
        keys,
      );
    };
    const keep = (event: ResponseEvent) => {
      if (event.ok && this.#written.length < MAX_READ_KEYS) {
        this.#written.push(keys.key(event.index));
      }
    };
    return this.#measured('2', [this.database], operation, 'closed', this.sizes.clients, {
      onResponse: keep,
    });
  }

  /** Scenario 2 in open loop at `ratePerSecond`. */
  async spreadWritesAtRate(ratePerSecond: number): Promise<RunRecord> {
    const operation = () =>
      this.#writes(
        () => this.database,
        (client) => this.#nodeFor(client),
      );
    return this.#measured('2-open', [this.database], operation, 'open', this.sizes.clients, {
      ratePerSecond,
    });
  }

  /** Scenario 3: batches of `bulkDocuments` per request. */
  async bulkWrites(): Promise<RunRecord> {
    const system = this.system;
    const size = this.sizes.bulkDocuments;
    const operation = (): Operation => {
      const sequence = new KeySequence();
      return {
        successStatus: system.bulkStatus,
        itemsPerRequest: size,
        countItems: (body) => system.countBulk(body),
        build: (index, client) => {
          const keys = Array.from({ length: size }, (_, j) => sequence.key(index * size + j));
          const values = keys.map((_, j) => valueFor(index * size + j));
          return system.bulkRequest(this.#nodeFor(client), this.database, keys, values);
        },
      };
    };
    return this.#measured('3', [this.database], operation, 'closed', this.sizes.bulkClients);
  }

  /** Scenario 4: linearizable reads of documents scenario 2 wrote. */
  async reads(): Promise<RunRecord> {
    const written = this.#written;
    assert(written.length > 0, 'scenario 4 reads what scenario 2 wrote: run it first');
    const operation = (): Operation => ({
      successStatus: this.system.readStatus,
      build: (index, client) => {
        const key = written[(index * READ_STRIDE) % written.length]!;
        return this.system.readRequest(this.#nodeFor(client), this.database, key);
      },
    });
    return this.#measured('4', [this.database], operation, 'closed', this.sizes.clients);
  }

  /** Scenario 5: writes spread over many databases (created beforehand). */
  async manyDatabaseWrites(databases: readonly string[]): Promise<RunRecord> {
    const operation = () =>
      this.#writes(
        (index) => databases[index % databases.length]!,
        (client) => this.#nodeFor(client),
      );
    return this.#measured('5', databases, operation, 'closed', this.sizes.clients);
  }

  /** Scenario 6: kills the leader `failoverKills` times under the scenario-2 load. */
  async failover(): Promise<FailoverResult> {
    const recoveriesMs: Array<number | null> = [];
    const killedNodes: string[] = [];
    let waiting: { killedAtMs: number; resolve: (doneAtMs: number) => void } | null = null;
    const onResponse = (event: ResponseEvent) => {
      if (waiting !== null && event.ok && event.sentAtMs >= waiting.killedAtMs) {
        waiting.resolve(event.doneAtMs);
        waiting = null;
      }
    };
    const stop = new AbortController();
    const operation = () =>
      this.#writes(
        () => this.database,
        (client) => this.#nodeFor(client),
      );
    const boundSeconds =
      this.sizes.failoverKills * (this.sizes.failoverWaitSeconds + LEADER_TIMEOUT_MS / 1000) + 60;
    const measured = this.#measured('6', [this.database], operation, 'closed', this.sizes.clients, {
      onResponse,
      signal: stop.signal,
      maxSeconds: boundSeconds,
      warmUp: false,
    });
    try {
      await sleep(FAILOVER_WARMUP_MS);
      for (let kill = 1; kill <= this.sizes.failoverKills; kill++) {
        const leader = await this.system.leader(this.database, LEADER_TIMEOUT_MS);
        let resolveFirst: (doneAtMs: number) => void = () => {};
        const firstSuccess = new Promise<number>((resolve) => {
          resolveFirst = resolve;
        });
        const killedAtMs = performance.now();
        waiting = { killedAtMs, resolve: resolveFirst };
        this.#down.add(leader);
        await leader.process.stop('SIGKILL');
        const doneAtMs = await within(
          firstSuccess,
          this.sizes.failoverWaitSeconds * MS_PER_SECOND,
          null,
        );
        waiting = null;
        const recovery = doneAtMs === null ? null : doneAtMs - killedAtMs;
        recoveriesMs.push(recovery);
        killedNodes.push(leader.name);
        progress(
          `${this.system.name} failover ${kill}/${this.sizes.failoverKills}: killed ${leader.name}, ` +
            `first write after ${recovery === null ? 'none (timed out)' : `${recovery.toFixed(0)} ms`}`,
        );
        await this.system.restart(leader);
        this.#down.delete(leader);
        await this.system.leader(this.database, LEADER_TIMEOUT_MS);
        await sleep(FAILOVER_SETTLE_MS);
      }
    } finally {
      stop.abort();
    }
    return { run: await measured, recoveriesMs, killedNodes };
  }

  /** Scenario 7: a follower misses `catchUpWrites` writes, then restarts and catches up. */
  async catchUp(): Promise<CatchUpResult> {
    const leader = await this.system.leader(this.database, LEADER_TIMEOUT_MS);
    const follower = this.system.nodes.find((node) => node !== leader)!;
    await follower.process.stop('SIGTERM');
    this.#down.add(follower);
    const operation = () =>
      this.#writes(
        () => this.database,
        (client) => this.#nodeFor(client),
      );
    const run = await this.#measured(
      '7',
      [this.database],
      operation,
      'closed',
      this.sizes.clients,
      {
        maxRequests: this.sizes.catchUpWrites,
        maxSeconds: this.sizes.catchUpWriteSeconds,
        warmUp: false,
      },
    );
    const currentLeader = await this.system.leader(this.database, LEADER_TIMEOUT_MS);
    const targetIndex = (await this.system.status(currentLeader, this.database)).commitIndex;
    const restartedAtMs = performance.now();
    await this.system.restart(follower);
    const servingAtMs = performance.now();
    this.#down.delete(follower);
    const caughtUp = await this.#waitApplied(follower, targetIndex);
    const status = await this.system.status(follower, this.database);
    const seconds = (from: number) =>
      caughtUp === null ? null : (caughtUp - from) / MS_PER_SECOND;
    return {
      run,
      follower: follower.name,
      targetIndex,
      secondsFromRestart: seconds(restartedAtMs),
      secondsFromServing: seconds(servingAtMs),
      snapshotsReceived: status.snapshotsReceived,
    };
  }

  /** Returns when `node` has applied `index`, or null after the catch-up bound. */
  async #waitApplied(node: BenchNode, index: number): Promise<number | null> {
    const deadline = performance.now() + this.sizes.catchUpWaitSeconds * MS_PER_SECOND;
    while (performance.now() < deadline) {
      const status = await this.system.status(node, this.database).catch(() => null);
      if (status !== null && status.appliedIndex >= index) return performance.now();
      await sleep(CATCH_UP_POLL_MS);
    }
    return null;
  }

  async #measured(
    scenario: string,
    namespaces: readonly string[],
    /** Builds the run's operation; called once per run, so each run writes new keys. */
    operation: () => Operation,
    mode: LoadMode,
    clients: number,
    extra: {
      ratePerSecond?: number;
      maxRequests?: number;
      maxSeconds?: number;
      signal?: AbortSignal;
      onResponse?: (event: ResponseEvent) => void;
      /** Runs the warm-up first (default); scenarios 6 and 7 have their own lead-in. */
      warmUp?: boolean;
    } = {},
  ): Promise<RunRecord> {
    const label = `${this.system.name} scenario ${scenario}`;
    if (extra.warmUp !== false && this.sizes.warmUpSeconds > 0) {
      await runLoad(operation(), {
        label: `${label} warm-up`,
        mode,
        clients,
        maxRequests: this.sizes.runRequests,
        maxSeconds: this.sizes.warmUpSeconds,
        requestTimeoutMs: this.sizes.requestTimeoutMs,
        ...(extra.ratePerSecond === undefined ? {} : { ratePerSecond: extra.ratePerSecond }),
      });
    }
    execFileSync('sync');
    const termsBefore = this.system.replicated ? await this.system.terms(namespaces) : 0;
    const meter = new ResourceMeter(this.system.nodes.map((node) => node.process));
    meter.start();
    const load = await runLoad(operation(), {
      label,
      mode,
      clients,
      maxRequests: extra.maxRequests ?? this.sizes.runRequests,
      maxSeconds: extra.maxSeconds ?? this.sizes.runSeconds,
      requestTimeoutMs: this.sizes.requestTimeoutMs,
      ...(extra.ratePerSecond === undefined ? {} : { ratePerSecond: extra.ratePerSecond }),
      ...(extra.signal === undefined ? {} : { signal: extra.signal }),
      ...(extra.onResponse === undefined ? {} : { onResponse: extra.onResponse }),
    });
    const usage = meter.finish();
    const leaderChanges = this.system.replicated
      ? (await this.system.terms(namespaces)) - termsBefore
      : null;
    const cpuSeconds = usage.reduce((sum, node) => sum + node.cpuSeconds, 0);
    const record: RunRecord = {
      scenario,
      system: this.system.name,
      load,
      usage,
      leaderChanges,
      cpuSecondsPerThousand: load.items > 0 ? (cpuSeconds / load.items) * 1000 : 0,
      maxPeakResidentBytes: Math.max(0, ...usage.map((node) => node.peakResidentBytes)),
    };
    progress(`${label}: ${describeUsage(record)}`);
    return record;
  }
}

/** Describes a run's CPU, memory and leader changes in one line, for progress output. */
export function describeUsage(record: RunRecord): string {
  const MIB = 1024 * 1024;
  const nodes = record.usage
    .map(
      (node) =>
        `${node.node} ${node.cpuSeconds.toFixed(1)} s CPU, ${Math.round(node.peakResidentBytes / MIB)} MiB`,
    )
    .join('; ');
  const changes = record.leaderChanges === null ? 'n/a' : String(record.leaderChanges);
  return `${nodes}; leader changes ${changes}`;
}
