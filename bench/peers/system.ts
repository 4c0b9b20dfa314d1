/**
 * What the cluster benchmark needs from each system it runs (Divan, etcd, PouchDB Server):
 * its nodes, the requests of each operation, its Raft status, and killing and restarting a
 * node. Each system lives in its own module; the scenarios see only `BenchSystem`.
 *
 * A namespace is where a scenario writes: a database for Divan and PouchDB Server, a key
 * prefix for etcd. Also here: free ports and the small HTTP helper that control requests
 * (status, set-up) use; load requests go through the load generator instead.
 */
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import type { HttpMethod, HttpRequestSpec } from '../load/generator.js';
import type { PeerProcess } from './process.js';

/** Every process the benchmark starts listens here, and every request goes here. */
export const LOOPBACK = '127.0.0.1';
const CONTROL_TIMEOUT_MS = 10_000;
const POLL_INTERVAL_MS = 50;

export interface BenchNode {
  readonly name: string;
  /** `http://127.0.0.1:PORT` of the node's client API. */
  readonly origin: string;
  readonly process: PeerProcess;
}

/** A node's view of one namespace's Raft group. */
export interface GroupStatus {
  readonly leader: string | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  /** Snapshots this node received since its process started. */
  readonly snapshotsReceived: number;
}

export interface BenchSystem {
  /** Name in report lines: `divan`, `etcd`, `pouchdb` or `divan-1`. */
  readonly name: string;
  /** The programs that run, with versions, for the JSON record. */
  readonly description: string;
  readonly nodes: readonly BenchNode[];
  /** Whether the system replicates with Raft (and has leaders and terms). */
  readonly replicated: boolean;
  /** The status of a successful single write, bulk write and read. */
  readonly writeStatus: number;
  readonly bulkStatus: number;
  readonly readStatus: number;

  /** Creates the databases (or nothing, for key prefixes) the scenarios write to. */
  createNamespaces(names: readonly string[]): Promise<void>;
  writeRequest(node: BenchNode, namespace: string, key: string, value: string): HttpRequestSpec;
  bulkRequest(
    node: BenchNode,
    namespace: string,
    keys: readonly string[],
    values: readonly string[],
  ): HttpRequestSpec;
  /** Counts the items a successful bulk response reports as written. */
  countBulk(body: string): number;
  /** A linearizable read of an existing key. */
  readRequest(node: BenchNode, namespace: string, key: string): HttpRequestSpec;

  /** The node leading a namespace's group, once every running node agrees on it. */
  leader(namespace: string, timeoutMs?: number): Promise<BenchNode>;
  /** A node's status of a namespace's group. */
  status(node: BenchNode, namespace: string): Promise<GroupStatus>;
  /** The sum over namespaces of the highest term any running node reports (0 without Raft). */
  terms(namespaces: readonly string[]): Promise<number>;
  /** Starts a stopped node again on the same data and waits until it serves. */
  restart(node: BenchNode): Promise<void>;
  /**
   * Stops every node with `signal` (SIGTERM when absent, then SIGKILL after a grace time)
   * and removes the system's data.
   */
  close(signal?: NodeJS.Signals): Promise<void>;
}

export interface ControlResponse {
  status: number;
  body: string;
}

/** Sends a control request (not load). Network errors reject; error statuses do not. */
export async function controlRequest(
  origin: string,
  method: HttpMethod | 'DELETE',
  path: string,
  options: { headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<ControlResponse> {
  const timeoutMs = options.timeoutMs ?? CONTROL_TIMEOUT_MS;
  const response = await request(`${origin}${path}`, {
    method,
    headers: options.headers,
    body: options.body,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  return { status: response.statusCode, body: await response.body.text() };
}

/** Polls `check` until it returns a value other than undefined; throws after the timeout. */
export async function waitUntil<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown;
  while (performance.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(POLL_INTERVAL_MS);
  }
  const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
}

/** Returns `count` distinct ports that were free on the loopback address a moment ago. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('listen returned no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
