/**
 * `divan cluster`: runs a local cluster of real node processes in the foreground.
 *
 * The data directory holds everything needed to start the same cluster again: `cluster.json`
 * (node names and ports), `cluster.secret` (the peer secret), `admin.txt` (the server admin) and
 * one data directory and log file per node. Ctrl-C or SIGTERM stops every node cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseAdmin, parseAdminFile } from '../cluster/config.js';

export interface ClusterOptions {
  nodes: number;
  data: string;
  host: string;
  port: number;
  peerPort?: number;
  admin?: string;
  logRetentionEntries?: number;
  logRetentionBytes?: number;
}

interface TopologyNode {
  name: string;
  http: number;
  peer: number;
}

interface Topology {
  host: string;
  nodes: TopologyNode[];
}

const STOP_GRACE_MS = 10_000;
const READY_POLL_MS = 200;
const READY_TIMEOUT_MS = 60_000;
const SECRET_BYTES = 32;
const GENERATED_PASSWORD_BYTES = 18;

/** Starts (or restarts) the local cluster and resolves when every node has stopped. */
export async function runCluster(options: ClusterOptions): Promise<number> {
  const dataDir = resolve(options.data);
  mkdirSync(dataDir, { recursive: true });
  const topology = loadOrCreateTopology(dataDir, options);
  const secretFile = ensureSecret(dataDir);
  const admin = ensureAdmin(dataDir, options.admin);

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log('stopping all nodes');
    await Promise.all([...children.values()].map((child) => stopChild(child)));
  };
  process.on('SIGINT', () => void stopAll());
  process.on('SIGTERM', () => void stopAll());

  const exits: Promise<void>[] = [];
  for (const node of topology.nodes) {
    const child = spawnNode(dataDir, topology, node, secretFile, options);
    children.set(node.name, child);
    exits.push(
      new Promise((resolveExit) => {
        child.on('exit', (code, signal) => {
          children.delete(node.name);
          if (!stopping) {
            const how = signal === null ? `code ${code}` : `signal ${signal}`;
            console.log(`node ${node.name} exited with ${how}; log: ${logPath(dataDir, node)}`);
          }
          resolveExit();
        });
      }),
    );
  }

  await Promise.all(topology.nodes.map((node) => waitUntilUp(topology.host, node.http)));
  printSummary(topology, admin, dataDir);
  await Promise.all(exits);
  return stopping ? 0 : 1;
}

function loadOrCreateTopology(dataDir: string, options: ClusterOptions): Topology {
  const path = join(dataDir, 'cluster.json');
  if (existsSync(path)) {
    const topology = JSON.parse(readFileSync(path, 'utf8')) as Topology;
    if (topology.nodes.length !== options.nodes) {
      throw new ConfigError(
        `${dataDir} holds a cluster of ${topology.nodes.length} nodes, not ${options.nodes}: use another --data directory for a new cluster`,
      );
    }
    return topology;
  }
  if (!Number.isInteger(options.nodes) || options.nodes < 1 || options.nodes > 9) {
    throw new ConfigError(`invalid --nodes ${options.nodes}: expected 1 to 9`);
  }
  const peerBase = options.peerPort ?? options.port + 1000;
  const nodes = Array.from({ length: options.nodes }, (_, i) => ({
    name: `n${i + 1}`,
    http: options.port + i,
    peer: peerBase + i,
  }));
  const topology = { host: options.host, nodes };
  writeFileSync(path, `${JSON.stringify(topology, null, 2)}\n`);
  return topology;
}

function ensureSecret(dataDir: string): string {
  const path = join(dataDir, 'cluster.secret');
  if (!existsSync(path)) {
    writeFileSync(path, `${randomBytes(SECRET_BYTES).toString('hex')}\n`, { mode: 0o600 });
  }
  return path;
}

function ensureAdmin(
  dataDir: string,
  flag: string | undefined,
): { name: string; password: string } {
  const path = join(dataDir, 'admin.txt');
  if (flag !== undefined) {
    const admin = parseAdmin(flag);
    writeFileSync(path, `${admin.name}:${admin.password}\n`, { mode: 0o600 });
    return admin;
  }
  if (existsSync(path)) {
    const [admin] = parseAdminFile(readFileSync(path, 'utf8'));
    if (admin === undefined) throw new ConfigError(`${path} names no admin`);
    return admin;
  }
  const admin = {
    name: 'admin',
    password: randomBytes(GENERATED_PASSWORD_BYTES).toString('base64url'),
  };
  writeFileSync(path, `${admin.name}:${admin.password}\n`, { mode: 0o600 });
  console.log(`generated server admin password (also in ${path}, mode 0600):`);
  console.log(`  ${admin.name}:${admin.password}`);
  return admin;
}

function spawnNode(
  dataDir: string,
  topology: Topology,
  node: TopologyNode,
  secretFile: string,
  options: ClusterOptions,
): ChildProcess {
  const nodeDir = join(dataDir, node.name);
  mkdirSync(nodeDir, { recursive: true });
  const members = topology.nodes
    .map((member) => `${member.name}@${topology.host}:${member.peer}`)
    .join(',');
  const args = [
    divanBin(),
    'start',
    '--name',
    node.name,
    '--data',
    nodeDir,
    '--http',
    `${topology.host}:${node.http}`,
    '--peer',
    `${topology.host}:${node.peer}`,
    '--members',
    members,
    '--secret-file',
    secretFile,
    '--admin-file',
    join(dataDir, 'admin.txt'),
  ];
  if (options.logRetentionEntries !== undefined) {
    args.push('--log-retention-entries', String(options.logRetentionEntries));
  }
  if (options.logRetentionBytes !== undefined) {
    args.push('--log-retention-bytes', String(options.logRetentionBytes));
  }
  const log = openSync(logPath(dataDir, node), 'a');
  return spawn(process.execPath, args, { stdio: ['ignore', log, log] });
}

function logPath(dataDir: string, node: TopologyNode): string {
  return join(dataDir, node.name, 'divan.log');
}

function divanBin(): string {
  // dist/src/cli/cluster.js -> bin/divan.js
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/divan.js');
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

async function waitUntilUp(host: string, port: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await isUp(host, port)) return;
    await new Promise((resolveWait) => setTimeout(resolveWait, READY_POLL_MS));
  }
  console.log(`node on port ${port} did not answer /_up within ${READY_TIMEOUT_MS / 1000} s`);
}

function isUp(host: string, port: number): Promise<boolean> {
  return new Promise((resolveUp) => {
    const req = request({ host, port, path: '/_up', method: 'GET' }, (res) => {
      res.resume();
      resolveUp(res.statusCode === 200);
    });
    req.on('error', () => resolveUp(false));
    req.end();
  });
}

function printSummary(
  topology: Topology,
  admin: { name: string; password: string },
  dataDir: string,
): void {
  console.log(`Divan cluster of ${topology.nodes.length} nodes is up (data in ${dataDir}):`);
  for (const node of topology.nodes) {
    console.log(
      `  ${node.name}  http://${topology.host}:${node.http}/  peer ${topology.host}:${node.peer}`,
    );
  }
  const first = topology.nodes[0]!;
  console.log(`server admin: ${admin.name}:${admin.password}`);
  console.log(
    `try: curl -u '${admin.name}:${admin.password}' http://${topology.host}:${first.http}/`,
  );
  console.log('press Ctrl-C to stop all nodes');
}
