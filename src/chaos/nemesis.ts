/**
 * The nemesis: runs a fault schedule against the cluster, one fault at a time, and heals each
 * fault before the next. It records every fault it fired (kind, target, times, result) and the
 * misbehaviour it saw directly: a node that exits by itself, a node that keeps running after
 * an injected fsync failure, a node that does not restart.
 *
 * Every fault is bounded in time; `healAll` undoes whatever is still in place (links, stopped
 * processes, slowed fsyncs, dead nodes) so that the run can check convergence.
 */
import type { ChaosCluster, ChaosNode, NodeExit } from './cluster.js';
import type { ChaosNetwork } from './network.js';
import type { LeaderObserver } from './observer.js';
import type { FaultKind, ScheduledFault } from './schedule.js';

/** How long a node may keep running after its fsync was made to fail. */
const FSYNC_FAILURE_EXIT_MS = 15_000;
/** Exit code of a node that stops on a failed database file. */
const FATAL_EXIT_CODE = 1;
const REQUEST_TIMEOUT_MS = 15_000;
const TRANSFER_ATTEMPTS = 2;
const TRANSFER_RETRY_MS = 1_000;
/** Entries a transfer target may lag behind the leader's last entry. */
const TRANSFER_MAX_LAG = 10;
/** How long the disks stay slow under load before a whole-cluster power loss. */
const SLOW_DISK_BEFORE_POWER_LOSS_MS = 1_000;
const COMPACTION_STARTED = 202;
/** Statuses that mean the build has no compaction route yet. */
const COMPACTION_MISSING: ReadonlySet<number> = new Set([404, 501]);

export type FaultResult = 'fired' | 'failed' | 'not_available' | 'skipped';

export interface FaultEvent {
  readonly kind: FaultKind;
  readonly targets: readonly string[];
  readonly startMs: number;
  endMs: number;
  result: FaultResult;
  detail: string;
}

export interface NemesisViolation {
  readonly kind: 'node_exit' | 'fsync_failure_ignored' | 'fsync_failure_exit' | 'restart_failed';
  readonly message: string;
}

export class Nemesis {
  readonly events: FaultEvent[] = [];
  readonly violations: NemesisViolation[] = [];
  #expectedExit: { node: ChaosNode; resolve: (exit: NodeExit) => void } | null = null;
  readonly #restarts = new Set<Promise<void>>();
  #stopped = false;

  constructor(
    readonly cluster: ChaosCluster,
    readonly network: ChaosNetwork,
    readonly observer: LeaderObserver,
    readonly db: string,
    readonly seed: number,
  ) {
    cluster.onUnexpectedExit = (node, exit) => this.#onUnexpectedExit(node, exit);
  }

  /** Runs `schedule` from `startMs` (on the cluster clock) until it ends or `endMs` passes. */
  async run(schedule: readonly ScheduledFault[], startMs: number, endMs: number): Promise<void> {
    for (const [index, fault] of schedule.entries()) {
      if (this.#stopped) return;
      const due = startMs + fault.atMs;
      const now = this.cluster.clock();
      if (due > now) await sleep(due - now);
      if (this.cluster.clock() + fault.durationMs > endMs) return;
      await this.#fire(fault, index);
    }
  }

  stop(): void {
    this.#stopped = true;
  }

  /** Removes every fault and brings every node back; records a node that does not restart. */
  async healAll(): Promise<void> {
    this.network.heal();
    for (const node of this.cluster.nodes) this.cluster.resume(node);
    await Promise.all([...this.#restarts]);
    for (const node of this.cluster.runningNodes()) {
      await this.cluster.setFileFaults(node, { fsync_delay_ms: 0, fsync_fail: false });
    }
    for (const node of this.cluster.nodes) {
      if (node.state === 'down') await this.#restart(node);
    }
  }

  async #fire(fault: ScheduledFault, index: number): Promise<void> {
    const event: FaultEvent = {
      kind: fault.kind,
      targets: [],
      startMs: this.cluster.clock(),
      endMs: 0,
      result: 'fired',
      detail: '',
    };
    this.events.push(event);
    try {
      await this.#apply(fault, event, this.seed * 1_000 + index);
    } finally {
      event.endMs = this.cluster.clock();
    }
  }

  async #apply(fault: ScheduledFault, event: FaultEvent, faultSeed: number): Promise<void> {
    const target = async () => {
      const node = await this.#target(fault);
      (event.targets as string[]).push(node.name);
      return node;
    };
    switch (fault.kind) {
      case 'kill':
        return this.#down(await target(), fault.durationMs, null);
      case 'power-loss':
        return this.#down(await target(), fault.durationMs, faultSeed, event);
      case 'cluster-power-loss':
        return this.#clusterPowerLoss(fault, faultSeed, event);
      case 'pause': {
        const node = await target();
        this.cluster.pause(node);
        await sleep(fault.durationMs);
        this.cluster.resume(node);
        return;
      }
      case 'partition':
        return this.#partition(fault, event);
      case 'partition-one-way':
        return this.#oneWay(fault, event);
      case 'isolate-leader': {
        const leader = await this.#leaderOrAny(fault.pick);
        (event.targets as string[]).push(leader.name);
        event.detail = `${fault.cutStyle} cut`;
        this.network.isolate(leader.name, fault.cutStyle);
        await sleep(fault.durationMs);
        this.network.heal();
        return;
      }
      case 'network-delay': {
        const node = await target();
        event.detail = `${fault.delayMs} ms per chunk`;
        this.network.slow(node.name, fault.delayMs);
        await sleep(fault.durationMs);
        this.network.heal();
        return;
      }
      case 'fsync-delay':
      case 'fsync-stall':
        return this.#slowFsync(await target(), fault, event);
      case 'fsync-failure':
        return this.#failFsync(await target(), fault.durationMs, event);
      case 'transfer':
        return this.#transfer(fault, event);
      case 'compaction':
        return this.#compact(fault, event);
    }
  }

  /** Kills a node, optionally loses its unsynced writes, and restarts it after `downMs`. */
  async #down(node: ChaosNode, downMs: number, powerSeed: number | null, event?: FaultEvent) {
    await this.cluster.kill(node);
    if (powerSeed !== null) {
      const lost = await this.cluster.losePower(node, powerSeed);
      if (event !== undefined) event.detail = `${lost.length} files lost unsynced bytes`;
    }
    await sleep(downMs);
    await this.#restart(node);
  }

  /**
   * Slows every node's fsync for a moment under load, then kills them all at once and loses
   * their unsynced writes. The slow disk widens the window in which written but unsynced log
   * entries exist; a node that acknowledges only synced entries loses nothing acknowledged.
   */
  async #clusterPowerLoss(
    fault: ScheduledFault,
    powerSeed: number,
    event: FaultEvent,
  ): Promise<void> {
    const slowDisk = fault.delayMs;
    await Promise.all(
      this.cluster
        .runningNodes()
        .map((node) => this.cluster.setFileFaults(node, { fsync_delay_ms: slowDisk })),
    );
    await sleep(SLOW_DISK_BEFORE_POWER_LOSS_MS);
    await this.cluster.killAll();
    let lost = 0;
    for (const [i, node] of this.cluster.nodes.entries()) {
      (event.targets as string[]).push(node.name);
      lost += (await this.cluster.losePower(node, powerSeed + i)).length;
    }
    event.detail = `fsync slowed to ${slowDisk} ms, then ${lost} files lost unsynced bytes`;
    await sleep(fault.durationMs);
    await Promise.all(this.cluster.nodes.map((node) => this.#restart(node)));
  }

  async #partition(fault: ScheduledFault, event: FaultEvent): Promise<void> {
    const leader = await this.observer.findLeader();
    const names = this.#ordered(fault.pick);
    const minoritySize = 1 + Math.floor(fault.pick * Math.floor((names.length - 1) / 2));
    let minority = names.slice(0, minoritySize);
    if (fault.targetLeader && leader !== null && !minority.includes(leader.name)) {
      minority = [leader.name, ...minority.slice(1)];
    }
    const majority = names.filter((name) => !minority.includes(name));
    (event.targets as string[]).push(...minority);
    event.detail = `${fault.cutStyle} cut: [${minority.join(',')}] | [${majority.join(',')}]`;
    this.network.partition([minority, majority], fault.cutStyle);
    await sleep(fault.durationMs);
    this.network.heal();
  }

  async #oneWay(fault: ScheduledFault, event: FaultEvent): Promise<void> {
    const leader = await this.observer.findLeader();
    const names = this.#ordered(fault.pick);
    let first = names[0]!;
    if (fault.targetLeader && leader !== null) first = leader.name;
    const second = names.find((name) => name !== first)!;
    const [from, to] = fault.pick < 0.5 ? [first, second] : [second, first];
    (event.targets as string[]).push(from, to);
    event.detail = `${from} -> ${to} dropped`;
    this.network.dropOneWay(from, to);
    await sleep(fault.durationMs);
    this.network.heal();
  }

  async #slowFsync(node: ChaosNode, fault: ScheduledFault, event: FaultEvent): Promise<void> {
    event.detail = `${fault.delayMs} ms per fsync`;
    const set = await this.cluster.setFileFaults(node, { fsync_delay_ms: fault.delayMs });
    if (set.kind !== 'response' || set.status !== 200) {
      event.result = 'failed';
      event.detail = `fault control did not answer: ${describe(set)}`;
      return;
    }
    await sleep(fault.durationMs);
    if (node.state === 'running') await this.cluster.setFileFaults(node, { fsync_delay_ms: 0 });
  }

  /**
   * Makes the node's next fsync fail. The node must stop at once (exit code 1) rather than
   * retry the fsync or carry on; the harness then restarts it.
   */
  async #failFsync(node: ChaosNode, downMs: number, event: FaultEvent): Promise<void> {
    const exited = new Promise<NodeExit>((resolve) => {
      this.#expectedExit = { node, resolve };
    });
    const set = await this.cluster.setFileFaults(node, { fsync_fail: true });
    if (set.kind !== 'response' || set.status !== 200) {
      this.#expectedExit = null;
      event.result = 'failed';
      event.detail = `fault control did not answer: ${describe(set)}`;
      return;
    }
    const exit = await Promise.race([exited, sleep(FSYNC_FAILURE_EXIT_MS).then(() => null)]);
    this.#expectedExit = null;
    if (exit === null) {
      this.violations.push({
        kind: 'fsync_failure_ignored',
        message: `${node.name} was still running ${FSYNC_FAILURE_EXIT_MS} ms after its fsync was made to fail`,
      });
      await this.cluster.kill(node);
    } else if (exit.code !== FATAL_EXIT_CODE) {
      this.violations.push({
        kind: 'fsync_failure_exit',
        message: `${node.name} exited with code ${exit.code} signal ${exit.signal} after a failed fsync; expected code ${FATAL_EXIT_CODE}`,
      });
    }
    event.detail = exit === null ? 'node kept running' : `node exited with code ${exit.code}`;
    await sleep(downMs);
    await this.#restart(node);
  }

  /**
   * Moves the leadership to a follower that is caught up (the core refuses a lagging one, and
   * a just-healed one may still be reconnecting), trying a second follower if the first
   * transfer does not complete.
   */
  async #transfer(fault: ScheduledFault, event: FaultEvent): Promise<void> {
    const details: string[] = [];
    for (let attempt = 0; attempt < TRANSFER_ATTEMPTS; attempt++) {
      const leader = await this.observer.findLeader();
      const candidates = leader === null ? [] : await this.#caughtUpFollowers(leader);
      if (leader === null || candidates.length === 0) {
        details.push('no leader or no caught-up follower');
        await sleep(TRANSFER_RETRY_MS);
        continue;
      }
      const to = candidates[Math.floor(fault.pick * candidates.length)]!;
      (event.targets as string[]).push(leader.name, to.name);
      const reply = await this.cluster.http.send(
        leader.httpPort,
        'POST',
        `/${this.db}/_raft/transfer`,
        { to: to.name },
        REQUEST_TIMEOUT_MS,
      );
      details.push(`${leader.name} -> ${to.name}: ${describe(reply)}`);
      if (reply.kind === 'response' && reply.status === 200) {
        event.detail = details.join('; ');
        return;
      }
      await sleep(TRANSFER_RETRY_MS);
    }
    event.result = 'failed';
    event.detail = details.join('; ');
  }

  /** Running followers whose match index is within `TRANSFER_MAX_LAG` of the leader's log. */
  async #caughtUpFollowers(leader: ChaosNode): Promise<ChaosNode[]> {
    const status = await this.cluster.raftStatus(leader, this.db);
    if (status === null || status.role !== 'leader' || status.progress === undefined) return [];
    const progress = status.progress;
    return this.cluster
      .runningNodes()
      .filter((node) => node !== leader)
      .filter(
        (node) => (progress[node.name]?.match_index ?? 0) + TRANSFER_MAX_LAG >= status.last_index,
      );
  }

  async #compact(fault: ScheduledFault, event: FaultEvent): Promise<void> {
    const running = this.cluster.runningNodes();
    const node = running[Math.floor(fault.pick * running.length)];
    if (node === undefined) {
      event.result = 'skipped';
      return;
    }
    (event.targets as string[]).push(node.name);
    const reply = await this.cluster.http.send(
      node.httpPort,
      'POST',
      `/${this.db}/_compact`,
      {},
      REQUEST_TIMEOUT_MS,
    );
    event.detail = describe(reply);
    if (reply.kind === 'response' && reply.status === COMPACTION_STARTED) return;
    const missing = reply.kind === 'response' && COMPACTION_MISSING.has(reply.status);
    event.result = missing ? 'not_available' : 'failed';
  }

  /** The leader (when the fault aims at it and one is known) or a node chosen by `pick`. */
  async #target(fault: ScheduledFault): Promise<ChaosNode> {
    const leader = await this.observer.findLeader();
    if (fault.targetLeader && leader !== null) return leader;
    const running = this.cluster.runningNodes();
    const others = running.filter((node) => node !== leader);
    const pool = others.length > 0 ? others : running.length > 0 ? running : this.cluster.nodes;
    return pool[Math.floor(fault.pick * pool.length)]!;
  }

  async #leaderOrAny(pick: number): Promise<ChaosNode> {
    const leader = await this.observer.findLeader();
    if (leader !== null) return leader;
    const nodes = this.cluster.nodes;
    return nodes[Math.floor(pick * nodes.length)]!;
  }

  /** Node names in an order derived from `pick`, so that groups vary between faults. */
  #ordered(pick: number): string[] {
    const names = this.cluster.nodes.map((node) => node.name);
    const offset = Math.floor(pick * names.length);
    return [...names.slice(offset), ...names.slice(0, offset)];
  }

  async #restart(node: ChaosNode): Promise<void> {
    if (node.state !== 'down') return;
    try {
      await this.cluster.start(node);
    } catch (error) {
      this.violations.push({
        kind: 'restart_failed',
        message: `${node.name} did not restart: ${(error as Error).message}`,
      });
    }
  }

  #onUnexpectedExit(node: ChaosNode, exit: NodeExit): void {
    if (this.#expectedExit?.node === node) {
      this.#expectedExit.resolve(exit);
      return;
    }
    this.violations.push({
      kind: 'node_exit',
      message: `${node.name} exited by itself (code ${exit.code}, signal ${exit.signal}) at ${Math.round(exit.at)} ms; see ${node.logPath}`,
    });
    const restart = this.#restart(node).finally(() => this.#restarts.delete(restart));
    this.#restarts.add(restart);
  }
}

function describe(reply: Awaited<ReturnType<ChaosCluster['http']['send']>>): string {
  if (reply.kind === 'failure') return reply.code;
  return `${reply.status} ${reply.body.slice(0, 160).trim()}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
