/**
 * A real Divan cluster for tests: node processes started with `bin/divan.js start` on
 * 127.0.0.1 at free ports, each with its own data directory under a temp dir, admin auth on.
 * Nodes can be killed (any signal), restarted on the same ports and data, and queried over HTTP.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { NODE_RUNTIME_FLAGS } from '../../src/cli/runtime-flags.js';
import { freePorts } from './ports.js';

/** Lines of a node's log quoted when it exits during start-up. */
const LOG_TAIL_LINES = 20;

export const ADMIN = { name: 'admin', password: 'test-password' };
const AUTHORIZATION = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
const BIN = resolve('bin/divan.js');

export interface TestNode {
  readonly name: string;
  readonly httpPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly url: string;
  process: ChildProcess | null;
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json: unknown;
}

export interface ClusterOptions {
  nodes?: number;
  extraArgs?: string[];
  env?: Record<string, string>;
}

export class TestCluster {
  readonly nodes: TestNode[] = [];
  #secretFile = '';
  readonly #routes = new Map<string, number>();
  /** Nodes added to the running cluster, with the URL they join through. */
  readonly #joins = new Map<string, string>();

  private constructor(
    readonly dir: string,
    readonly options: ClusterOptions,
  ) {}

  /** Starts a cluster and stops it (SIGKILL) when the test ends. */
  static async start(t: TestContext, options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = await TestCluster.create(t, options);
    await cluster.startAll();
    return cluster;
  }

  /** Sets up a cluster's ports and directories without starting any node. */
  static async create(t: TestContext, options: ClusterOptions = {}): Promise<TestCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'divan-cluster-'));
    const cluster = new TestCluster(dir, options);
    // One hook, so the nodes are dead before their directory goes: after hooks run in the
    // order they were added, and a live node can create a file while the directory is removed.
    t.after(async () => {
      await cluster.killAll();
      await rm(dir, { recursive: true, force: true, maxRetries: 5 });
    });
    await cluster.#setUp(options.nodes ?? 3);
    return cluster;
  }

  async startAll(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.startNode(node)));
  }

  /** Adds a node that joins the running cluster through `via`, and starts it. */
  async addNode(name: string, via: TestNode): Promise<TestNode> {
    const [httpPort, peerPort] = (await freePorts(2)) as [number, number];
    const dataDir = join(this.dir, name);
    mkdirSync(dataDir, { recursive: true });
    const node: TestNode = {
      name,
      httpPort,
      peerPort,
      dataDir,
      url: `http://127.0.0.1:${httpPort}`,
      process: null,
    };
    this.nodes.push(node);
    this.#joins.set(name, via.url);
    await this.startNode(node);
    return node;
  }

  /** Makes `from` reach `to`'s peer port at `port` instead (a proxy in between). */
  routePeer(from: string, to: string, port: number): void {
    this.#routes.set(`${from}>${to}`, port);
  }

  #membersFor(node: TestNode): string {
    return this.nodes
      .filter((member) => !this.#joins.has(member.name))
      .map((member) => {
        const port = this.#routes.get(`${node.name}>${member.name}`) ?? member.peerPort;
        return `${member.name}@127.0.0.1:${port}`;
      })
      .join(',');
  }

  async #setUp(count: number): Promise<void> {
    const ports = await freePorts(count * 2);
    this.#secretFile = join(this.dir, 'cluster.secret');
    writeFileSync(this.#secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    for (let i = 0; i < count; i++) {
      const name = `n${i + 1}`;
      const dataDir = join(this.dir, name);
      mkdirSync(dataDir, { recursive: true });
      const httpPort = ports[2 * i]!;
      this.nodes.push({
        name,
        httpPort,
        peerPort: ports[2 * i + 1]!,
        dataDir,
        url: `http://127.0.0.1:${httpPort}`,
        process: null,
      });
    }
  }

  node(name: string): TestNode {
    const node = this.nodes.find((candidate) => candidate.name === name);
    if (node === undefined) throw new Error(`no node ${name}`);
    return node;
  }

  /** Starts a node's process and waits until its HTTP port answers `/_up`. */
  async startNode(node: TestNode): Promise<void> {
    const log = openSync(join(node.dataDir, 'divan.log'), 'a');
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
      ...(this.#joins.has(node.name)
        ? ['--join', this.#joins.get(node.name)!]
        : ['--members', this.#membersFor(node)]),
      '--secret-file',
      this.#secretFile,
      '--admin',
      `${ADMIN.name}:${ADMIN.password}`,
      ...(this.options.extraArgs ?? []),
    ];
    node.process = spawn(process.execPath, args, {
      stdio: ['ignore', log, log],
      env: { ...process.env, DIVAN_LOG_LEVEL: 'debug', ...this.options.env },
    });
    const child = node.process;
    let exit = '';
    child.on('exit', (code, signal) => {
      exit = signal === null ? `exit code ${code}` : `signal ${signal}`;
      if (node.process === child) node.process = null;
    });
    await waitFor(`${node.name} up`, async () => {
      if (node.process !== child) {
        throw new Error(
          `${node.name} exited during start-up (${exit}); its log ends with:\n${logTail(node)}`,
        );
      }
      const result = await this.http(node, 'GET', '/_up', undefined, { auth: false });
      return result.status === 200;
    });
  }

  /** Sends `signal` to a node and waits for its process to exit. */
  async kill(node: TestNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = node.process;
    if (child === null) return;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill(signal);
    await exited;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.nodes.map((node) => this.kill(node)));
  }

  /** An HTTP request to a node; never throws for a status code, only for a network failure. */
  async http(
    node: TestNode,
    method: string,
    path: string,
    body?: unknown,
    options: { auth?: boolean; headers?: Record<string, string> } = {},
  ): Promise<HttpResult> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.auth !== false) headers.authorization = AUTHORIZATION;
    let payload: string | Buffer | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await request(`${node.url}${path}`, {
      method: method as 'GET',
      headers,
      body: payload,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
    });
    const text = await response.body.text();
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.statusCode, headers: response.headers, body: text, json };
  }

  /** Like `http`, but retries network failures and 503s until the deadline. */
  async httpRetry(
    node: TestNode,
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 60_000,
  ): Promise<HttpResult> {
    let last: HttpResult | undefined;
    await waitFor(
      `${method} ${path} on ${node.name}`,
      async () => {
        try {
          last = await this.http(node, method, path, body);
          return last.status !== 503;
        } catch {
          return false;
        }
      },
      timeoutMs,
    );
    return last!;
  }

  /** The Raft status of a database's group on a node. */
  async raft(node: TestNode, db: string): Promise<RaftStatus> {
    const result = await this.http(node, 'GET', `/${encodeURIComponent(db)}/_raft`);
    if (result.status !== 200)
      throw new Error(`_raft on ${node.name}: ${result.status} ${result.body}`);
    return result.json as RaftStatus;
  }

  /** Waits until the live nodes agree on one leader of `db` and returns that node. */
  async leaderOf(db: string, timeoutMs = 30_000): Promise<TestNode> {
    let leader: TestNode | undefined;
    await waitFor(
      `a leader of ${db}`,
      async () => {
        const live = this.nodes.filter((node) => node.process !== null);
        const statuses = await Promise.all(
          live.map((node) => this.raft(node, db).catch(() => null)),
        );
        const leaders = statuses.filter((status) => status?.role === 'leader');
        if (leaders.length !== 1) return false;
        const name = leaders[0]!.node;
        if (!statuses.every((status) => status !== null && status.leader === name)) return false;
        leader = this.node(name);
        return true;
      },
      timeoutMs,
    );
    return leader!;
  }
}

export interface RaftStatus {
  node: string;
  role: string;
  term: number;
  leader: string | null;
  commit_index: number;
  applied_index: number;
  first_index: number;
  last_index: number;
  members: string[];
  hash_chain: string;
  snapshots_sent: number;
  snapshots_received: number;
  progress?: Record<string, { match_index: number; next_index: number }>;
}

const POLL_MS = 100;

/** Polls `check` until it returns true; fails with `what` after the deadline. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((done) => setTimeout(done, POLL_MS));
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

/** Waits until every node has applied the same index with the same hash chain. */
export async function waitForConvergence(
  cluster: TestCluster,
  db: string,
  nodes: readonly TestNode[] = cluster.nodes,
): Promise<void> {
  await waitFor(
    `replicas of ${db} to converge`,
    async () => {
      const statuses: RaftStatus[] = await Promise.all(nodes.map((node) => cluster.raft(node, db)));
      const first = statuses[0]!;
      return statuses.every(
        (status) =>
          status.applied_index === first.applied_index &&
          status.hash_chain === first.hash_chain &&
          status.commit_index === status.applied_index,
      );
    },
    60_000,
  );
}

/** Compares `_all_docs`, `_changes` and the hash chain of every node, read without a barrier. */
export async function assertIdenticalReplicas(
  cluster: TestCluster,
  db: string,
  nodes: readonly TestNode[] = cluster.nodes,
): Promise<void> {
  const read = async (node: TestNode, path: string) => {
    const result = await cluster.http(node, 'GET', `/${db}/${path}`);
    assert.equal(result.status, 200, `${path} on ${node.name}: ${result.body}`);
    return result.body;
  };
  const reference = nodes[0]!;
  const allDocs = await read(reference, '_all_docs?stable=false&include_docs=true');
  const changes = await read(reference, '_changes?stable=false&style=all_docs');
  for (const node of nodes.slice(1)) {
    assert.equal(
      await read(node, '_all_docs?stable=false&include_docs=true'),
      allDocs,
      `_all_docs of ${node.name}`,
    );
    assert.equal(
      await read(node, '_changes?stable=false&style=all_docs'),
      changes,
      `_changes of ${node.name}`,
    );
  }
  await assertSameHashChains(cluster, db, nodes);
}

/**
 * Checks that the nodes' hash chains agree. An entry may still be applying on some node (a
 * new leader's empty entry, say), so this waits until every node has applied the same index;
 * two nodes seen at one index with different chains fail at once, since that is divergence.
 */
async function assertSameHashChains(
  cluster: TestCluster,
  db: string,
  nodes: readonly TestNode[],
): Promise<void> {
  let divergence: string | null = null;
  await waitFor(`every node of ${db} at one applied index`, async () => {
    const statuses = await Promise.all(nodes.map((node) => cluster.raft(node, db)));
    const chainAt = new Map<number, RaftStatus>();
    for (const status of statuses) {
      const seen = chainAt.get(status.applied_index);
      if (seen !== undefined && seen.hash_chain !== status.hash_chain) {
        divergence = `hash_chain of ${status.node} differs from ${seen.node}'s at applied index ${status.applied_index}: ${status.hash_chain} != ${seen.hash_chain}`;
        return true;
      }
      chainAt.set(status.applied_index, status);
    }
    return chainAt.size === 1;
  });
  assert.equal(divergence, null, divergence ?? '');
}

/** Returns the last lines of a node's log, to explain a failed start. */
function logTail(node: TestNode): string {
  try {
    return readFileSync(join(node.dataDir, 'divan.log'), 'utf8')
      .split('\n')
      .slice(-LOG_TAIL_LINES)
      .join('\n');
  } catch (error) {
    return `(no log: ${(error as Error).message})`;
  }
}
