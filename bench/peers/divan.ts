/**
 * Divan for the cluster benchmark: N node processes of `bin/divan.js start` on 127.0.0.1 at
 * free ports, default settings and the Node.js flags `bin/divan.js` runs with, admin
 * authentication on (every request carries Basic credentials of a server admin with a random
 * password), each node's data and log under the benchmark's temp dir.
 *
 * A namespace is a database. Writes are `PUT /{db}/{id}` of `{"v": VALUE}` (201 is the only
 * success), batches are `POST /{db}/_bulk_docs`, reads are `GET /{db}/{id}`, linearizable by
 * default. Leaders, terms and indexes come from `GET /{db}/_raft`.
 *
 * With `profileDir`, each node runs under `node --cpu-prof` and writes its profile into
 * `<profileDir>/<node>/` when it exits after SIGTERM (`close` stops nodes that way). With
 * `logsDir`, `close` copies each node's log there before it removes the data.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_RUNTIME_FLAGS } from '../../src/cli/runtime-flags.js';
import type { HttpRequestSpec } from '../load/generator.js';
import { PeerProcess } from './process.js';
import {
  type BenchNode,
  type BenchSystem,
  controlRequest,
  freePorts,
  type GroupStatus,
  LOOPBACK,
  waitUntil,
} from './system.js';

const BIN = fileURLToPath(new URL('../../../bin/divan.js', import.meta.url));
const ADMIN_NAME = 'admin';
const SECRET_BYTES = 32;
const PASSWORD_BYTES = 12;
const START_TIMEOUT_MS = 30_000;
const LEADER_TIMEOUT_MS = 30_000;
/** Databases created at once by `createNamespaces`. */
const CREATE_CONCURRENCY = 32;
const CREATE_TIMEOUT_MS = 60_000;
const HTTP_CREATED = 201;
const HTTP_PRECONDITION_FAILED = 412;

export interface DivanClusterOptions {
  /** Name in report lines, e.g. `divan` or `divan-1`. */
  readonly name: string;
  readonly nodes: number;
  readonly dir: string;
  /** Runs every node under `node --cpu-prof`, writing profiles here. */
  readonly profileDir?: string;
  /** Copies each node's log here, as `<name>-<node>.log`, when the cluster closes. */
  readonly logsDir?: string;
}

interface RaftBody {
  node: string;
  role: string;
  term: number;
  leader: string | null;
  commit_index: number;
  applied_index: number;
  snapshots_received: number;
}

export class DivanCluster implements BenchSystem {
  readonly replicated = true;
  readonly writeStatus = HTTP_CREATED;
  readonly bulkStatus = HTTP_CREATED;
  readonly readStatus = 200;
  readonly nodes: BenchNode[] = [];
  readonly description: string;
  readonly #password = randomBytes(PASSWORD_BYTES).toString('hex');
  readonly #authorization: string;

  private constructor(readonly options: DivanClusterOptions) {
    this.description = `Divan (${BIN}), ${options.nodes} node(s), default settings, admin auth on`;
    const credentials = `${ADMIN_NAME}:${this.#password}`;
    this.#authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }

  get name(): string {
    return this.options.name;
  }

  /** Starts every node and waits until each returns 200 to `GET /_up`. */
  static async start(options: DivanClusterOptions): Promise<DivanCluster> {
    const cluster = new DivanCluster(options);
    mkdirSync(options.dir, { recursive: true });
    const secretFile = join(options.dir, 'cluster.secret');
    writeFileSync(secretFile, randomBytes(SECRET_BYTES).toString('hex'), { mode: 0o600 });
    const ports = await freePorts(options.nodes * 2);
    const members = Array.from(
      { length: options.nodes },
      (_, i) => `n${i + 1}@${LOOPBACK}:${ports[2 * i + 1]}`,
    ).join(',');
    for (let i = 0; i < options.nodes; i++) {
      const name = `n${i + 1}`;
      const dataDir = join(options.dir, name);
      mkdirSync(dataDir, { recursive: true });
      const nodeArgs: string[] = [...NODE_RUNTIME_FLAGS];
      if (options.profileDir !== undefined) {
        const profileDir = join(options.profileDir, name);
        mkdirSync(profileDir, { recursive: true });
        nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
      }
      const args = [
        ...nodeArgs,
        BIN,
        'start',
        `--name=${name}`,
        `--data=${dataDir}`,
        `--http=${LOOPBACK}:${ports[2 * i]}`,
        `--peer=${LOOPBACK}:${ports[2 * i + 1]}`,
        `--members=${members}`,
        `--secret-file=${secretFile}`,
        `--admin=${ADMIN_NAME}:${cluster.#password}`,
      ];
      const peer = new PeerProcess({
        name,
        command: process.execPath,
        args,
        logPath: join(dataDir, 'divan.log'),
      });
      cluster.nodes.push({ name, origin: `http://${LOOPBACK}:${ports[2 * i]}`, process: peer });
    }
    try {
      await Promise.all(cluster.nodes.map((node) => cluster.#startNode(node)));
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  async #startNode(node: BenchNode): Promise<void> {
    node.process.start();
    await waitUntil(
      `${this.name} ${node.name} to serve`,
      async () => {
        if (!node.process.running) throw new Error(`${node.name} exited during start-up`);
        const response = await controlRequest(node.origin, 'GET', '/_up');
        return response.status === 200 ? true : undefined;
      },
      START_TIMEOUT_MS,
    );
  }

  #headers(json: boolean): Record<string, string> {
    return json
      ? { authorization: this.#authorization, 'content-type': 'application/json' }
      : { authorization: this.#authorization };
  }

  /** Creates each database through the first node, retrying while there is no leader. */
  async createNamespaces(names: readonly string[]): Promise<void> {
    const queue = [...names];
    const worker = async () => {
      for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
        const db = name;
        await waitUntil(
          `${this.name}: database ${db} created`,
          async () => {
            const response = await controlRequest(this.nodes[0]!.origin, 'PUT', `/${db}`, {
              headers: this.#headers(false),
            });
            const created =
              response.status === HTTP_CREATED || response.status === HTTP_PRECONDITION_FAILED;
            return created ? true : undefined;
          },
          CREATE_TIMEOUT_MS,
        );
      }
    };
    await Promise.all(Array.from({ length: CREATE_CONCURRENCY }, worker));
    await Promise.all(names.map((name) => this.leader(name)));
  }

  writeRequest(node: BenchNode, namespace: string, key: string, value: string): HttpRequestSpec {
    return {
      origin: node.origin,
      method: 'PUT',
      path: `/${namespace}/${key}`,
      headers: this.#headers(true),
      body: `{"v":"${value}"}`,
    };
  }

  bulkRequest(
    node: BenchNode,
    namespace: string,
    keys: readonly string[],
    values: readonly string[],
  ): HttpRequestSpec {
    const docs = keys.map((key, i) => `{"_id":"${key}","v":"${values[i]}"}`);
    return {
      origin: node.origin,
      method: 'POST',
      path: `/${namespace}/_bulk_docs`,
      headers: this.#headers(true),
      body: `{"docs":[${docs.join(',')}]}`,
    };
  }

  countBulk(body: string): number {
    const results = JSON.parse(body) as Array<{ ok?: boolean }>;
    return results.filter((result) => result.ok === true).length;
  }

  readRequest(node: BenchNode, namespace: string, key: string): HttpRequestSpec {
    return {
      origin: node.origin,
      method: 'GET',
      path: `/${namespace}/${key}`,
      headers: this.#headers(false),
    };
  }

  async #raft(node: BenchNode, db: string): Promise<RaftBody> {
    const response = await controlRequest(node.origin, 'GET', `/${db}/_raft`, {
      headers: this.#headers(false),
    });
    if (response.status !== 200) {
      throw new Error(`${db}/_raft on ${node.name}: ${response.status} ${response.body}`);
    }
    return JSON.parse(response.body) as RaftBody;
  }

  async leader(namespace: string, timeoutMs = LEADER_TIMEOUT_MS): Promise<BenchNode> {
    return waitUntil(
      `a ${this.name} leader of ${namespace}`,
      async () => {
        const live = this.nodes.filter((node) => node.process.running);
        const statuses = await Promise.all(live.map((node) => this.#raft(node, namespace)));
        const leaders = statuses.filter((status) => status.role === 'leader');
        if (leaders.length !== 1) return undefined;
        const name = leaders[0]!.node;
        if (!statuses.every((status) => status.leader === name)) return undefined;
        return live.find((node) => node.name === name);
      },
      timeoutMs,
    );
  }

  async status(node: BenchNode, namespace: string): Promise<GroupStatus> {
    const raft = await this.#raft(node, namespace);
    return {
      leader: raft.leader,
      term: raft.term,
      commitIndex: raft.commit_index,
      appliedIndex: raft.applied_index,
      snapshotsReceived: raft.snapshots_received,
    };
  }

  async terms(namespaces: readonly string[]): Promise<number> {
    const live = this.nodes.filter((node) => node.process.running);
    let total = 0;
    for (const db of namespaces) {
      const statuses = await Promise.all(
        live.map((node) => this.#raft(node, db).catch(() => null)),
      );
      total += Math.max(0, ...statuses.map((status) => status?.term ?? 0));
    }
    return total;
  }

  async restart(node: BenchNode): Promise<void> {
    await this.#startNode(node);
  }

  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.process.stop(signal)));
    const logsDir = this.options.logsDir;
    if (logsDir !== undefined) {
      mkdirSync(logsDir, { recursive: true });
      for (const node of this.nodes) {
        const log = join(this.options.dir, node.name, 'divan.log');
        if (existsSync(log)) copyFileSync(log, join(logsDir, `${this.name}-${node.name}.log`));
      }
    }
    rmSync(this.options.dir, { recursive: true, force: true });
  }
}
