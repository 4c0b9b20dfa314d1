/**
 * PouchDB Server for the cluster benchmark: one `pouchdb-server` process (the dev
 * dependency, run by the current Node.js) on 127.0.0.1 with its default LevelDB store under
 * the benchmark's temp dir, never SQLite and never the in-memory store. It replicates nothing
 * and has no Raft, so it has no leader and no terms; its requests are CouchDB's, without
 * authentication (pouchdb-server starts with no admin).
 */
import { mkdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

const BIN = realpathSync(
  fileURLToPath(new URL('../../../node_modules/.bin/pouchdb-server', import.meta.url)),
);
const PACKAGE_JSON = fileURLToPath(
  new URL('../../../node_modules/pouchdb-server/package.json', import.meta.url),
);
const START_TIMEOUT_MS = 30_000;
const JSON_HEADERS = { 'content-type': 'application/json' };
const HTTP_CREATED = 201;
const HTTP_PRECONDITION_FAILED = 412;

export class PouchServer implements BenchSystem {
  readonly name = 'pouchdb';
  readonly replicated = false;
  readonly writeStatus = HTTP_CREATED;
  readonly bulkStatus = HTTP_CREATED;
  readonly readStatus = 200;
  readonly nodes: BenchNode[] = [];
  readonly description: string;

  private constructor(readonly dir: string) {
    const version = (JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version: string }).version;
    this.description = `pouchdb-server ${version}, 1 node, LevelDB store`;
  }

  static async start(dir: string): Promise<PouchServer> {
    const server = new PouchServer(dir);
    const dataDir = join(dir, 'data');
    mkdirSync(dataDir, { recursive: true });
    const [port] = (await freePorts(1)) as [number];
    const peer = new PeerProcess({
      name: 'p1',
      command: process.execPath,
      args: [
        BIN,
        '--host',
        LOOPBACK,
        '--port',
        String(port),
        '--no-stdout-logs',
        '--config',
        join(dir, 'config.json'),
        '--dir',
        `${dataDir}/`,
      ],
      cwd: dir,
      logPath: join(dir, 'pouchdb-server.log'),
    });
    const node = { name: 'p1', origin: `http://${LOOPBACK}:${port}`, process: peer };
    server.nodes.push(node);
    try {
      await server.restart(node);
    } catch (error) {
      await server.close();
      throw error;
    }
    return server;
  }

  async createNamespaces(names: readonly string[]): Promise<void> {
    for (const name of names) {
      const response = await controlRequest(this.nodes[0]!.origin, 'PUT', `/${name}`);
      if (response.status !== HTTP_CREATED && response.status !== HTTP_PRECONDITION_FAILED) {
        throw new Error(`pouchdb-server: creating ${name} failed: ${response.status}`);
      }
    }
  }

  writeRequest(node: BenchNode, namespace: string, key: string, value: string): HttpRequestSpec {
    return {
      origin: node.origin,
      method: 'PUT',
      path: `/${namespace}/${key}`,
      headers: JSON_HEADERS,
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
      headers: JSON_HEADERS,
      body: `{"docs":[${docs.join(',')}]}`,
    };
  }

  countBulk(body: string): number {
    const results = JSON.parse(body) as Array<{ ok?: boolean }>;
    return results.filter((result) => result.ok === true).length;
  }

  readRequest(node: BenchNode, namespace: string, key: string): HttpRequestSpec {
    return { origin: node.origin, method: 'GET', path: `/${namespace}/${key}`, headers: {} };
  }

  async leader(): Promise<BenchNode> {
    return this.nodes[0]!;
  }

  async status(): Promise<GroupStatus> {
    return { leader: null, term: 0, commitIndex: 0, appliedIndex: 0, snapshotsReceived: 0 };
  }

  async terms(): Promise<number> {
    return 0;
  }

  async restart(node: BenchNode): Promise<void> {
    node.process.start();
    await waitUntil(
      'pouchdb-server to serve',
      async () => {
        if (!node.process.running) throw new Error('pouchdb-server exited during start-up');
        const response = await controlRequest(node.origin, 'GET', '/');
        return response.status === 200 ? true : undefined;
      },
      START_TIMEOUT_MS,
    );
  }

  async close(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.process.stop(signal)));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
