/**
 * etcd for the cluster benchmark: three members of Debian's `etcd-server` (etcd 3.4) on
 * 127.0.0.1 with default settings, driven through the v3 HTTP/JSON gateway of each member:
 * `/v3/kv/put`, `/v3/kv/range` (linearizable, `serializable` left false) and `/v3/kv/txn`,
 * with keys and values in base64.
 *
 * When `etcd` is not on the PATH, `findOrInstallEtcd` installs `etcd-server` with `apt-get`
 * and reports that on stderr; when that fails, etcd is reported unavailable, never replaced.
 * The package's own service is never started: each member is a child of the benchmark with
 * its data under the benchmark's temp dir, removed by `close`.
 *
 * A namespace is a key prefix (`<namespace>/`); all namespaces share etcd's one Raft group,
 * so terms and leaders are cluster-wide.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { HttpRequestSpec } from '../load/generator.js';
import { progress } from '../report.js';
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

const MEMBERS = 3;
const START_TIMEOUT_MS = 30_000;
const INSTALL_TIMEOUT_MS = 300_000;
const JSON_HEADERS = { 'content-type': 'application/json' };
/** Counter etcd 3.4 exports, per sending member, once a snapshot was received. */
const SNAPSHOT_RECEIVED_METRIC = 'etcd_network_snapshot_receive_success';

export type EtcdAvailability =
  | { available: true; binary: string; version: string; installedNow: boolean }
  | { available: false; reason: string };

/** Finds `etcd`, installing Debian's `etcd-server` with apt-get when it is missing. */
export function findOrInstallEtcd(): EtcdAvailability {
  const found = etcdVersion();
  if (found !== null)
    return { available: true, binary: 'etcd', version: found, installedNow: false };
  progress('etcd is missing: installing Debian package etcd-server with apt-get');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const options = { env, stdio: 'inherit' as const, timeout: INSTALL_TIMEOUT_MS };
  try {
    try {
      execFileSync('apt-get', ['install', '-y', 'etcd-server'], options);
    } catch {
      progress('apt-get install failed; updating the package lists and trying once more');
      execFileSync('apt-get', ['update'], options);
      execFileSync('apt-get', ['install', '-y', 'etcd-server'], options);
    }
  } catch (error) {
    return { available: false, reason: `apt-get install -y etcd-server failed: ${message(error)}` };
  }
  const installed = etcdVersion();
  if (installed === null) {
    return { available: false, reason: 'etcd-server was installed but `etcd` is not on the PATH' };
  }
  return { available: true, binary: 'etcd', version: installed, installedNow: true };
}

function etcdVersion(): string | null {
  try {
    const output = execFileSync('etcd', ['--version'], { encoding: 'utf8' });
    return /etcd Version: (\S+)/.exec(output)?.[1] ?? 'unknown';
  } catch {
    return null;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

interface EtcdStatusBody {
  header: { member_id: string; raft_term: string };
  leader: string;
  raftIndex: string;
  raftTerm: string;
  raftAppliedIndex: string;
}

interface EtcdNode extends BenchNode {
  /** The member id etcd reports (a decimal uint64), learned once the member serves. */
  memberId: string;
}

export class EtcdCluster implements BenchSystem {
  readonly name = 'etcd';
  readonly replicated = true;
  readonly writeStatus = 200;
  readonly bulkStatus = 200;
  readonly readStatus = 200;
  readonly nodes: EtcdNode[] = [];

  private constructor(
    readonly dir: string,
    readonly description: string,
  ) {}

  /** Starts three members under `dir` and waits until they agree on a leader. */
  static async start(dir: string, version: string): Promise<EtcdCluster> {
    const cluster = new EtcdCluster(dir, `etcd ${version}, ${MEMBERS} members, v3 HTTP gateway`);
    const ports = await freePorts(MEMBERS * 2);
    const peerUrl = (i: number) => `http://${LOOPBACK}:${ports[2 * i + 1]}`;
    const initialCluster = Array.from({ length: MEMBERS }, (_, i) => `e${i + 1}=${peerUrl(i)}`);
    for (let i = 0; i < MEMBERS; i++) {
      const name = `e${i + 1}`;
      const dataDir = join(dir, name);
      mkdirSync(dataDir, { recursive: true });
      const clientUrl = `http://${LOOPBACK}:${ports[2 * i]}`;
      const args = [
        `--name=${name}`,
        `--data-dir=${join(dataDir, 'data')}`,
        `--listen-client-urls=${clientUrl}`,
        `--advertise-client-urls=${clientUrl}`,
        `--listen-peer-urls=${peerUrl(i)}`,
        `--initial-advertise-peer-urls=${peerUrl(i)}`,
        `--initial-cluster=${initialCluster.join(',')}`,
        '--initial-cluster-state=new',
        `--initial-cluster-token=bench-${ports[0]}`,
        '--logger=zap',
        '--log-outputs=stderr',
      ];
      const peer = new PeerProcess({
        name,
        command: 'etcd',
        args,
        logPath: join(dataDir, 'etcd.log'),
      });
      cluster.nodes.push({ name, origin: clientUrl, process: peer, memberId: '' });
    }
    try {
      await Promise.all(cluster.nodes.map((node) => cluster.#startNode(node)));
      await cluster.leader('');
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  async #startNode(node: EtcdNode): Promise<void> {
    node.process.start();
    const status = await waitUntil(
      `${node.name} to serve`,
      async () => {
        if (!node.process.running) throw new Error(`${node.name} exited during start-up`);
        return await this.#rawStatus(node);
      },
      START_TIMEOUT_MS,
    );
    node.memberId = status.header.member_id;
  }

  async #rawStatus(node: BenchNode): Promise<EtcdStatusBody> {
    const response = await controlRequest(node.origin, 'POST', '/v3/maintenance/status', {
      headers: JSON_HEADERS,
      body: '{}',
    });
    if (response.status !== 200) {
      throw new Error(`status of ${node.name}: ${response.status} ${response.body}`);
    }
    return JSON.parse(response.body) as EtcdStatusBody;
  }

  async createNamespaces(): Promise<void> {
    // Key prefixes need no set-up.
  }

  writeRequest(node: BenchNode, namespace: string, key: string, value: string): HttpRequestSpec {
    return {
      origin: node.origin,
      method: 'POST',
      path: '/v3/kv/put',
      headers: JSON_HEADERS,
      body: `{"key":"${base64(`${namespace}/${key}`)}","value":"${base64(value)}"}`,
    };
  }

  bulkRequest(
    node: BenchNode,
    namespace: string,
    keys: readonly string[],
    values: readonly string[],
  ): HttpRequestSpec {
    const puts = keys.map(
      (key, i) =>
        `{"requestPut":{"key":"${base64(`${namespace}/${key}`)}","value":"${base64(values[i]!)}"}}`,
    );
    return {
      origin: node.origin,
      method: 'POST',
      path: '/v3/kv/txn',
      headers: JSON_HEADERS,
      body: `{"success":[${puts.join(',')}]}`,
    };
  }

  countBulk(body: string): number {
    const reply = JSON.parse(body) as { succeeded?: boolean; responses?: unknown[] };
    return reply.succeeded === true ? (reply.responses?.length ?? 0) : 0;
  }

  readRequest(node: BenchNode, namespace: string, key: string): HttpRequestSpec {
    return {
      origin: node.origin,
      method: 'POST',
      path: '/v3/kv/range',
      headers: JSON_HEADERS,
      body: `{"key":"${base64(`${namespace}/${key}`)}"}`,
    };
  }

  async leader(_namespace: string, timeoutMs = START_TIMEOUT_MS): Promise<BenchNode> {
    return waitUntil(
      'an etcd leader',
      async () => {
        const live = this.nodes.filter((node) => node.process.running);
        const statuses = await Promise.all(live.map((node) => this.#rawStatus(node)));
        const leaderId = statuses[0]?.leader;
        if (leaderId === undefined || leaderId === '0') return undefined;
        if (!statuses.every((status) => status.leader === leaderId)) return undefined;
        return live.find((node) => node.memberId === leaderId);
      },
      timeoutMs,
    );
  }

  async status(node: BenchNode, _namespace: string): Promise<GroupStatus> {
    const status = await this.#rawStatus(node);
    const leader = this.nodes.find((candidate) => candidate.memberId === status.leader);
    return {
      leader: leader?.name ?? null,
      term: Number(status.raftTerm),
      commitIndex: Number(status.raftIndex),
      appliedIndex: Number(status.raftAppliedIndex),
      snapshotsReceived: await this.#snapshotsReceived(node),
    };
  }

  async #snapshotsReceived(node: BenchNode): Promise<number> {
    const response = await controlRequest(node.origin, 'GET', '/metrics');
    let total = 0;
    for (const line of response.body.split('\n')) {
      if (line.startsWith(`${SNAPSHOT_RECEIVED_METRIC}{`)) total += Number(line.split(' ').at(-1));
    }
    return total;
  }

  /** etcd has one group: the highest term any running member reports, once per namespace. */
  async terms(namespaces: readonly string[]): Promise<number> {
    const live = this.nodes.filter((node) => node.process.running);
    const statuses = await Promise.all(live.map((node) => this.#rawStatus(node).catch(() => null)));
    const term = Math.max(0, ...statuses.map((status) => Number(status?.raftTerm ?? 0)));
    return term * Math.min(1, namespaces.length);
  }

  async restart(node: BenchNode): Promise<void> {
    const member = this.nodes.find((candidate) => candidate === node);
    if (member === undefined) throw new Error(`${node.name} is not a member of this cluster`);
    await this.#startNode(member);
  }

  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.process.stop(signal)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
