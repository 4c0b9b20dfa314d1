/**
 * Simulated clients running a key-value workload (get, put, compare-and-set) against the
 * cluster, recording the history of invocations and completions for the linearizability checker.
 *
 * A client runs one operation at a time. A `not_leader` rejection means nothing was appended,
 * so the client retries at the hinted leader. An operation rejected on every attempt never took
 * effect and is left out of the history. A timeout, a crash of the node, or a lost leadership
 * before apply makes the outcome unknown (`return: null`).
 */
import type { KvInput, KvOutput, Operation } from '../check/index.js';
import type { NodeId } from '../raft/index.js';
import { NO_NODE } from '../raft/index.js';
import type { SimCluster } from './cluster.js';
import type { RequestOutcome, SimNode } from './node.js';
import type { SimRandom } from './random.js';
import type { KvCommand, KvStateMachine } from './state-machine.js';
import { encodeCommand } from './state-machine.js';

export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  /** Clients start no operation after this time (virtual ms). */
  readonly stopAtMs: number;
  readonly timeoutMs: number;
  /** Probability that a client pauses long enough for an idle group to go quiet. */
  readonly idleRate: number;
  readonly idleMs: readonly [number, number];
}

const CLIENT_DELAY_MS: readonly [number, number] = [1, 3];
const MAX_ATTEMPTS = 8;
const RETRY_DELAY_MS: readonly [number, number] = [5, 30];

interface PendingOperation {
  readonly client: number;
  readonly key: string;
  readonly input: KvInput;
  readonly call: number;
  done: boolean;
}

export class Workload {
  readonly history: Operation<KvInput, KvOutput>[] = [];
  acknowledged = 0;
  /** The log position of every acknowledged write. */
  readonly acknowledgedAt: { index: number; term: number }[] = [];
  #sequence = 0;
  readonly #pending = new Set<PendingOperation>();
  readonly #lastSeen = new Map<string, string | null>();
  readonly #leaderHint = new Map<number, NodeId>();

  constructor(
    readonly cluster: SimCluster,
    readonly random: SimRandom,
    readonly options: WorkloadOptions,
  ) {}

  start(): void {
    for (let client = 0; client < this.options.clients; client++) {
      this.cluster.schedule(this.random.int(0, 50), () => this.#next(client));
    }
  }

  /** Marks every unfinished operation unknown; call when the run ends. */
  finish(): void {
    for (const pending of this.#pending) this.#complete(pending, null);
  }

  #next(client: number): void {
    if (this.cluster.now >= this.options.stopAtMs) return;
    if (this.random.chance(this.options.idleRate)) {
      const [min, max] = this.options.idleMs;
      this.cluster.schedule(this.random.int(min, max), () => this.#begin(client));
      return;
    }
    this.#begin(client);
  }

  #begin(client: number): void {
    if (this.cluster.now >= this.options.stopAtMs) return;
    const key = `k${this.random.int(1, this.options.keys)}`;
    const pending: PendingOperation = {
      client,
      key,
      input: this.#chooseInput(client, key),
      call: this.cluster.now,
      done: false,
    };
    this.#pending.add(pending);
    this.cluster.schedule(this.options.timeoutMs, () => this.#complete(pending, null));
    this.#attempt(pending, this.#target(client, pending.input), 1);
  }

  #chooseInput(client: number, key: string): KvInput {
    const roll = this.random.next();
    if (roll < 0.4) return { op: 'get' };
    const value = `c${client}.${++this.#sequence}`;
    if (roll < 0.8) return { op: 'put', value };
    return { op: 'cas', expected: this.#lastSeen.get(key) ?? null, value };
  }

  #target(client: number, input: KvInput): SimNode {
    const hint = this.#leaderHint.get(client);
    // Half the reads go to any node, to exercise follower reads.
    if (
      hint !== undefined &&
      hint !== NO_NODE &&
      !(input.op === 'get' && this.random.chance(0.5))
    ) {
      return this.cluster.node(hint);
    }
    return this.random.pick(this.cluster.provisionedNodes());
  }

  #attempt(pending: PendingOperation, node: SimNode, attempt: number): void {
    const [min, max] = CLIENT_DELAY_MS;
    this.cluster.schedule(this.random.int(min, max), () => {
      if (pending.done) return;
      if (!node.up) {
        this.#retry(pending, NO_NODE, attempt);
        return;
      }
      if (pending.input.op === 'get') this.#read(pending, node, attempt);
      else this.#write(pending, node, attempt);
    });
  }

  #write(pending: PendingOperation, node: SimNode, attempt: number): void {
    const input = pending.input;
    if (input.op === 'get') return;
    const command: KvCommand =
      input.op === 'cas'
        ? { op: 'cas', key: pending.key, expected: input.expected, value: input.value }
        : input.op === 'put'
          ? { op: 'put', key: pending.key, value: input.value }
          : { op: 'delete', key: pending.key };
    node.propose(encodeCommand(command), (outcome) => this.#reply(pending, outcome, attempt));
  }

  #read(pending: PendingOperation, node: SimNode, attempt: number): void {
    const context = `${pending.client}.${++this.#sequence}`;
    const machine = node.stateMachine as KvStateMachine;
    node.read(
      context,
      () =>
        this.#reply(pending, { kind: 'ok', result: { value: machine.get(pending.key) } }, attempt),
      (leader) => this.#reply(pending, { kind: 'rejected', leader }, attempt),
    );
  }

  #reply(pending: PendingOperation, outcome: RequestOutcome, attempt: number): void {
    const [min, max] = CLIENT_DELAY_MS;
    this.cluster.schedule(this.random.int(min, max), () => {
      if (pending.done) return;
      if (outcome.kind === 'rejected') {
        this.#retry(pending, outcome.leader, attempt);
        return;
      }
      if (outcome.kind === 'unknown') {
        this.#complete(pending, null);
        return;
      }
      const output = outcome.result as KvOutput;
      if (pending.input.op !== 'get') {
        this.acknowledged++;
        if (outcome.index !== undefined && outcome.term !== undefined) {
          this.acknowledgedAt.push({ index: outcome.index, term: outcome.term });
        }
      }
      if ('value' in output) this.#lastSeen.set(pending.key, output.value);
      if (pending.input.op === 'put') this.#lastSeen.set(pending.key, pending.input.value);
      this.#complete(pending, output);
    });
  }

  #retry(pending: PendingOperation, leader: NodeId, attempt: number): void {
    if (leader !== NO_NODE) this.#leaderHint.set(pending.client, leader);
    else this.#leaderHint.delete(pending.client);
    if (attempt >= MAX_ATTEMPTS) {
      // Every attempt was rejected before anything was appended: the operation had no effect.
      pending.done = true;
      this.#pending.delete(pending);
      this.#next(pending.client);
      return;
    }
    const [min, max] = RETRY_DELAY_MS;
    const delay = this.random.int(min, max) * attempt;
    const target =
      leader !== NO_NODE
        ? this.cluster.node(leader)
        : this.random.pick(this.cluster.provisionedNodes());
    this.cluster.schedule(delay, () => this.#attempt(pending, target, attempt + 1));
  }

  #complete(pending: PendingOperation, output: KvOutput | null): void {
    if (pending.done) return;
    pending.done = true;
    this.#pending.delete(pending);
    this.history.push({
      client: pending.client,
      key: pending.key,
      input: pending.input,
      output,
      call: pending.call,
      return: output === null ? null : this.cluster.now,
    });
    this.#next(pending.client);
  }
}
