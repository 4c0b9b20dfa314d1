/**
 * The node processes of a chaos run: real `divan start` processes on 127.0.0.1, each with its
 * own data directory and log file under the run directory, peer traffic through the run's
 * `ChaosNetwork`, fault control on, and the file fault layers that `DIVAN_FAULTS` installs.
 *
 * Owns: spawning, SIGKILL, SIGSTOP/SIGCONT, restarts on the same ports and data, power loss
 * (SIGKILL, then cutting each file to what its journal says was synced), and a record of every
 * exit. Every process it starts is its own child, signalled only by its pid; `killAll` ends
 * them all. It does not decide when to do any of this (the nemesis does) and does not check
 * data (the checks do).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_RUNTIME_FLAGS } from '../cli/runtime-flags.js';
import { applyPowerLossJournal, JOURNAL_NAME } from '../storage/power-loss.js';
import { assert } from '../util/assert.js';
import type { Credentials, HttpOutcome, NodeHttp } from './http.js';
import type { ChaosNetwork } from './network.js';

const BIN = fileURLToPath(new URL('../../../bin/divan.js', import.meta.url));
const SECRET_BYTES = 32;
/** How long a node may take from spawn to answering `GET /_up`. */
const START_TIMEOUT_MS = 30_000;
const POLL_MS = 100;
const STATUS_TIMEOUT_MS = 1_000;
/** A node under load may take a while to answer fault control; it must not be missed. */
const FAULT_CONTROL_TIMEOUT_MS = 5_000;

export type NodeState = 'running' | 'paused' | 'down';

/** Every node process started by this module and not yet exited, for `killAllChildren`. */
const liveChildren = new Set<ChildProcess>();

/**
 * SIGKILLs every node process this process started and that still runs (stopped ones too),
 * synchronously: for signal handlers, so that an interrupted run leaves nothing behind.
 */
export function killAllChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  liveChildren.clear();
}

export interface NodeExit {
  readonly at: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** True when the harness caused it (SIGKILL); false for a node that stopped by itself. */
  readonly expected: boolean;
}

export interface ChaosNode {
  readonly name: string;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly logPath: string;
  state: NodeState;
  process: ChildProcess | null;
  readonly exits: NodeExit[];
  starts: number;
}

export interface ClusterSetup {
  readonly dir: string;
  readonly ports: readonly number[];
  readonly credentials: Credentials;
  /** `DIVAN_FAULTS` for every node. */
  readonly faultLayers: string;
  /** Extra `divan start` flags for every node (planted bugs). */
  readonly extraArgs: readonly string[];
}

/** The Raft status of the run's database on one node (`GET /{db}/_raft`). */
export interface RaftStatus {
  readonly node: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commit_index: number;
  readonly applied_index: number;
  readonly last_index: number;
  readonly hash_chain: string;
  /** On the leader: each member's replication progress. */
  readonly progress?: Readonly<Record<string, { readonly match_index: number }>>;
}

export class ChaosCluster {
  readonly nodes: ChaosNode[];
  readonly #secretFile: string;
  #network: ChaosNetwork | null = null;
  /** Called when a node exits without the harness asking it to. */
  onUnexpectedExit: (node: ChaosNode, exit: NodeExit) => void = () => {};

  constructor(
    readonly setup: ClusterSetup,
    readonly http: NodeHttp,
    readonly clock: () => number,
    nodeCount: number,
  ) {
    assert(setup.ports.length >= nodeCount * 2, 'two ports per node');
    this.#secretFile = join(setup.dir, 'cluster.secret');
    writeFileSync(this.#secretFile, randomBytes(SECRET_BYTES).toString('hex'), { mode: 0o600 });
    mkdirSync(join(setup.dir, 'logs'), { recursive: true });
    this.nodes = Array.from({ length: nodeCount }, (_, i) => {
      const name = `n${i + 1}`;
      const dataDir = join(setup.dir, name);
      mkdirSync(dataDir, { recursive: true });
      return {
        name,
        httpPort: setup.ports[2 * i]!,
        peerPort: setup.ports[2 * i + 1]!,
        dataDir,
        logPath: join(setup.dir, 'logs', `${name}.log`),
        state: 'down' as NodeState,
        process: null,
        exits: [],
        starts: 0,
      };
    });
  }

  attachNetwork(network: ChaosNetwork): void {
    this.#network = network;
  }

  node(name: string): ChaosNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    assert(node !== undefined, `no node ${name}`);
    return node;
  }

  /** Nodes whose process runs and is not stopped. */
  runningNodes(): ChaosNode[] {
    return this.nodes.filter((node) => node.state === 'running');
  }

  /** Starts a node's process and waits until it answers `GET /_up`. */
  async start(node: ChaosNode): Promise<void> {
    assert(node.process === null, `${node.name} is already running`);
    assert(this.#network !== null, 'the network is attached before nodes start');
    const log = openSync(node.logPath, 'a');
    const args = [
      ...NODE_RUNTIME_FLAGS,
      BIN,
      'start',
      '--name',
      node.name,
      '--data',
      node.dataDir,
      '--http',
      `127.0.0.1:${node.httpPort}`,
      '--peer',
      `127.0.0.1:${node.peerPort}`,
      '--members',
      this.#network.membersFor(node.name),
      '--secret-file',
      this.#secretFile,
      '--admin',
      `${this.setup.credentials.name}:${this.setup.credentials.password}`,
      '--fault-control',
      ...this.setup.extraArgs,
    ];
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', log, log],
      env: {
        ...process.env,
        DIVAN_LOG_LEVEL: 'info',
        DIVAN_FAULTS: this.setup.faultLayers,
      },
    });
    closeSync(log);
    liveChildren.add(child);
    child.once('exit', () => liveChildren.delete(child));
    node.process = child;
    node.state = 'running';
    node.starts++;
    child.once('exit', (code, signal) => this.#onExit(node, child, code, signal));
    await this.#waitUp(node, child);
  }

  /** SIGKILLs a node (SIGCONT first if it was stopped) and waits for the exit. */
  async kill(node: ChaosNode): Promise<void> {
    const child = node.process;
    if (child === null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    node.state = 'down';
    child.kill('SIGKILL');
    await exited;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.kill(node)));
  }

  /** Stops a node's process with SIGSTOP: its sockets stay open but nothing answers. */
  pause(node: ChaosNode): void {
    assert(node.process !== null, `${node.name} has no process`);
    assert(node.state === 'running', `${node.name} is ${node.state}, not running`);
    node.process.kill('SIGSTOP');
    node.state = 'paused';
  }

  resume(node: ChaosNode): void {
    if (node.process === null || node.state !== 'paused') return;
    node.process.kill('SIGCONT');
    node.state = 'running';
  }

  /**
   * Applies a power loss to a killed node's files: each directory's journal of synced lengths
   * cuts or tears every file back to what was synced. Returns the files that lost bytes.
   */
  async losePower(node: ChaosNode, seed: number): Promise<string[]> {
    assert(node.process === null, `${node.name} must be killed before its power is lost`);
    const lost: string[] = [];
    for (const directory of journalDirectories(node.dataDir)) {
      const actions = await applyPowerLossJournal(directory, { seed });
      for (const action of actions) {
        if (action.action !== 'kept') lost.push(`${action.path}: ${action.action}`);
      }
    }
    return lost;
  }

  /** Reads the run's database Raft status on a node; null when it does not answer in time. */
  async raftStatus(node: ChaosNode, db: string): Promise<RaftStatus | null> {
    if (node.state !== 'running') return null;
    const outcome = await this.http.send(
      node.httpPort,
      'GET',
      `/${db}/_raft`,
      undefined,
      STATUS_TIMEOUT_MS,
    );
    if (outcome.kind !== 'response' || outcome.status !== 200) return null;
    return outcome.json as RaftStatus;
  }

  /** Changes the file fault layers of a running node (`PUT /_node/_local/_faults`). */
  setFileFaults(
    node: ChaosNode,
    change: { fsync_delay_ms?: number; fsync_fail?: boolean },
  ): Promise<HttpOutcome> {
    return this.http.send(
      node.httpPort,
      'PUT',
      '/_node/_local/_faults',
      change,
      FAULT_CONTROL_TIMEOUT_MS,
    );
  }

  async #waitUp(node: ChaosNode, child: ChildProcess): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (node.process !== child)
        throw new Error(`${node.name} exited during start-up; see ${node.logPath}`);
      const outcome = await this.http.send(
        node.httpPort,
        'GET',
        '/_up',
        undefined,
        STATUS_TIMEOUT_MS,
      );
      if (outcome.kind === 'response' && outcome.status === 200) return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    throw new Error(
      `${node.name} did not answer GET /_up within ${START_TIMEOUT_MS} ms; see ${node.logPath}`,
    );
  }

  #onExit(node: ChaosNode, child: ChildProcess, code: number | null, signal: string | null): void {
    if (node.process !== child) return;
    const expected = node.state === 'down';
    const exit: NodeExit = { at: this.clock(), code, signal, expected };
    node.exits.push(exit);
    node.process = null;
    node.state = 'down';
    if (!expected) this.onUnexpectedExit(node, exit);
  }
}

/** Lists every directory under `root` (itself included) that contains a power-loss journal. */
function journalDirectories(root: string): string[] {
  const found: string[] = [];
  const visit = (directory: string) => {
    const entries = readdirSync(directory, { withFileTypes: true });
    if (entries.some((entry) => entry.isFile() && entry.name === JOURNAL_NAME)) {
      found.push(directory);
    }
    for (const entry of entries) {
      if (entry.isDirectory()) visit(join(directory, entry.name));
    }
  };
  visit(root);
  return found;
}
