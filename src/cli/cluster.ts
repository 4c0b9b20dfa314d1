/**
 * `divan cluster`: runs a local cluster of real node processes in the foreground.
 *
 * The data directory holds everything needed to start the same cluster again: `cluster.json`
 * (node names and ports), `cluster.secret` (the peer secret), `admin.txt` (the server admin) and
 * one data directory and log file per node. Ctrl-C or SIGTERM stops every node cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseAdmin, parseAdminFile } from '../cluster/config.js';
import { probeListen } from '../util/listen-probe.js';
import { NODE_RUNTIME_FLAGS } from './runtime-flags.js';

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
  /** Added to the running cluster: starts with `--join` instead of `--members`. */
  joined?: boolean;
}

interface Topology {
  host: string;
  nodes: TopologyNode[];
}

const STOP_GRACE_MS = 10_000;
const READY_POLL_MS = 200;
const READY_TIMEOUT_MS = 60_000;
/** Timeout of one `/_up` probe: a probe that times out counts as not up. */
const UP_REQUEST_TIMEOUT_MS = 2_000;
/** Ports `divan cluster add` tries above the highest port in use before it gives up. */
const PORT_SEARCH_SPAN = 100;
const MAX_PORT = 65_535;
/** Log lines `divan cluster add` prints when the new node fails to start. */
const FAILED_LOG_LINES = 20;
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
  const pidFile = join(dataDir, 'cluster.pid');
  writeFileSync(pidFile, `${process.pid}\n`);
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
  const launch = (node: TopologyNode) => {
    rmSync(exitPath(dataDir, node.name), { force: true });
    const child = spawnNode(dataDir, topology, node, secretFile, options);
    children.set(node.name, child);
    exits.push(
      new Promise((resolveExit) => {
        child.on('exit', (code, signal) => {
          children.delete(node.name);
          if (!stopping) {
            const how = signal === null ? `code ${code}` : `signal ${signal}`;
            console.log(`node ${node.name} exited with ${how}; log: ${logPath(dataDir, node)}`);
            // `divan cluster add` waits for this file to tell a failed start from a slow one.
            writeFileSync(exitPath(dataDir, node.name), `${how}\n`);
          }
          resolveExit();
        });
      }),
    );
  };
  for (const node of topology.nodes) launch(node);
  // `divan cluster add` writes cluster.json and sends SIGHUP: start every listed node that is
  // not running, with the ports the file gives it now.
  process.on('SIGHUP', () => {
    if (stopping) return;
    const current = JSON.parse(readFileSync(join(dataDir, 'cluster.json'), 'utf8')) as Topology;
    for (const node of current.nodes) {
      if (children.has(node.name)) continue;
      const known = topology.nodes.findIndex((listed) => listed.name === node.name);
      if (known === -1) topology.nodes.push(node);
      else topology.nodes[known] = node;
      console.log(`starting node ${node.name} on http://${topology.host}:${node.http}/`);
      try {
        launch(node);
      } catch (error) {
        console.log(`starting node ${node.name} failed: ${(error as Error).message}`);
      }
    }
  });

  await Promise.all(topology.nodes.map((node) => waitUntilUp(topology.host, node.http)));
  printSummary(topology, admin, dataDir);
  // Wait for every node, including nodes added while waiting.
  for (let waited = 0; waited < exits.length; ) {
    waited = exits.length;
    await Promise.all(exits);
  }
  rmSync(pidFile, { force: true });
  return stopping ? 0 : 1;
}

/**
 * `divan cluster add`: adds a node to the running local cluster in `data`. The node is started
 * by that cluster's `divan cluster` process and joins through the first node once its HTTP
 * listener is up. A node that exits before it responds is removed from `cluster.json` again.
 */
export async function addClusterNode(data: string): Promise<number> {
  const dataDir = resolve(data);
  const topologyPath = join(dataDir, 'cluster.json');
  const pidPath = join(dataDir, 'cluster.pid');
  if (!existsSync(topologyPath) || !existsSync(pidPath)) {
    throw new ConfigError(
      `no running cluster in ${dataDir}: start it with divan cluster --data ${data}`,
    );
  }
  const pid = Number(readFileSync(pidPath, 'utf8').trim());
  const topology = JSON.parse(readFileSync(topologyPath, 'utf8')) as Topology;
  const used = new Set(topology.nodes.map((node) => node.name));
  let number = topology.nodes.length + 1;
  while (used.has(`n${number}`)) number++;
  const inUse = new Set(topology.nodes.flatMap((node) => [node.http, node.peer]));
  const http = await nextFreePort(
    topology.host,
    Math.max(...topology.nodes.map((known) => known.http)),
    inUse,
  );
  inUse.add(http);
  const peer = await nextFreePort(
    topology.host,
    Math.max(...topology.nodes.map((known) => known.peer)),
    inUse,
  );
  const node: TopologyNode = { name: `n${number}`, http, peer, joined: true };
  topology.nodes.push(node);
  writeFileSync(topologyPath, `${JSON.stringify(topology, null, 2)}\n`);
  rmSync(exitPath(dataDir, node.name), { force: true });
  try {
    process.kill(pid, 'SIGHUP');
  } catch {
    throw new ConfigError(`the cluster process ${pid} of ${dataDir} is not running`);
  }
  const outcome = await waitForStart(topology.host, node.http, exitPath(dataDir, node.name));
  if (outcome === 'timeout') {
    // Still running, perhaps slow: it stays listed, and joins once its listener is up.
    console.error(
      `divan: timed out after ${READY_TIMEOUT_MS / 1000} s waiting for ${node.name} to respond ` +
        `to /_up. It stays in ${topologyPath} and may still join: see ${logPath(dataDir, node)}`,
    );
    return 1;
  }
  if (outcome !== 'up') {
    topology.nodes = topology.nodes.filter((listed) => listed.name !== node.name);
    writeFileSync(topologyPath, `${JSON.stringify(topology, null, 2)}\n`);
    const log = logPath(dataDir, node);
    console.error(
      `divan: ${node.name} exited with ${outcome} and was not added. The end of ${log}:`,
    );
    console.error(lastLines(log, FAILED_LOG_LINES));
    return 1;
  }
  console.log(
    `added ${node.name}: http://${topology.host}:${node.http}/  peer ${topology.host}:${node.peer}`,
  );
  console.log('it joins every database as a learner and becomes a voter once caught up');
  return 0;
}

/** Returns the first port above `after` that no listed node uses and nothing listens on. */
async function nextFreePort(host: string, after: number, inUse: Set<number>): Promise<number> {
  for (let port = after + 1; port <= MAX_PORT && port <= after + PORT_SEARCH_SPAN; port++) {
    if (!inUse.has(port) && (await probeListen(host, port)) === null) return port;
  }
  throw new ConfigError(
    `no free port found in the ${PORT_SEARCH_SPAN} ports after ${after}: free one and retry`,
  );
}

/**
 * Waits for the node at `port`: returns 'up' once it responds to `/_up`, how it exited once
 * `exitFile` appears, or 'timeout' after the ready timeout.
 */
async function waitForStart(host: string, port: number, exitFile: string | null): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await isUp(host, port)) return 'up';
    if (exitFile !== null && existsSync(exitFile)) return readFileSync(exitFile, 'utf8').trim();
    await new Promise((resolveWait) => setTimeout(resolveWait, READY_POLL_MS));
  }
  return 'timeout';
}

function lastLines(path: string, count: number): string {
  if (!existsSync(path)) return '(no log)';
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  return lines.slice(-count).join('\n');
}

function loadOrCreateTopology(dataDir: string, options: ClusterOptions): Topology {
  const path = join(dataDir, 'cluster.json');
  if (existsSync(path)) {
    const topology = JSON.parse(readFileSync(path, 'utf8')) as Topology;
    const started = topology.nodes.filter((node) => node.joined !== true).length;
    if (started !== options.nodes) {
      throw new ConfigError(
        `${dataDir} holds a cluster started with ${started} nodes, not ${options.nodes}: use another --data directory for a new cluster`,
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
    .filter((member) => member.joined !== true)
    .map((member) => `${member.name}@${topology.host}:${member.peer}`)
    .join(',');
  const first = topology.nodes[0]!;
  const membership =
    node.joined === true
      ? ['--join', `http://${topology.host}:${first.http}`]
      : ['--members', members];
  const args = [
    ...NODE_RUNTIME_FLAGS,
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
    ...membership,
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

/** Returns the path of the file where the cluster process records how a node exited on its own. */
function exitPath(dataDir: string, name: string): string {
  return join(dataDir, name, 'exited');
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

async function waitUntilUp(host: string, port: number): Promise<boolean> {
  if ((await waitForStart(host, port, null)) === 'up') return true;
  console.log(`node on port ${port} did not answer /_up within ${READY_TIMEOUT_MS / 1000} s`);
  return false;
}

function isUp(host: string, port: number): Promise<boolean> {
  return new Promise((resolveUp) => {
    const req = request(
      { host, port, path: '/_up', method: 'GET', timeout: UP_REQUEST_TIMEOUT_MS },
      (res) => {
        res.resume();
        resolveUp(res.statusCode === 200);
      },
    );
    req.on('timeout', () => req.destroy());
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
