/**
 * One chaos run, start to end:
 * 1. start the proxies and the node processes, create the database, wait for a leader;
 * 2. fault phase: clients run against every node while the nemesis runs the seeded schedule;
 * 3. heal everything, keep the clients running for a recovery window (some request must
 *    succeed in it), then stop them;
 * 4. wait for the replicas to converge, compare them, read the final state;
 * 5. SIGKILL the whole cluster at once (with power loss in that mode), restart it, and check
 *    that every node reopens with the same data and every acknowledged write;
 * 6. run the checks and build the report.
 *
 * Every process is a child of this one and is killed by pid in `finally`; the run directory is
 * removed unless the caller keeps it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { SimRandom } from '../sim/random.js';
import {
  checkAcknowledgedWritesKept,
  checkFailedWritesInvisible,
  checkLinearizability,
  checkMinimums,
  checkRevisionIdentity,
  type MinimumsResult,
  type Violation,
} from './checks.js';
import { ChaosClient, type ClientContext } from './client.js';
import { ChaosCluster } from './cluster.js';
import {
  compareReplicas,
  diffStates,
  type FinalDocument,
  readFinalState,
  waitForConvergence,
} from './final-state.js';
import { ClientHistory } from './history.js';
import { NodeHttp } from './http.js';
import { Nemesis } from './nemesis.js';
import { ChaosNetwork } from './network.js';
import { LeaderObserver } from './observer.js';
import { type ChaosOptions, replayCommand } from './options.js';
import {
  type ChaosReport,
  countFaults,
  countRequests,
  longestUnavailability,
  REPORT_VERSION,
  saveHistory,
  saveReport,
  type Verdict,
  withRequests,
} from './report.js';
import { buildSchedule } from './schedule.js';
import { ClientMemory, KeyPool } from './workload.js';

export const DB = 'chaos';
const CREDENTIALS = { name: 'admin', password: 'chaos-admin-password' };
const SETUP_TIMEOUT_MS = 60_000;
const CONVERGENCE_TIMEOUT_MS = 60_000;
/** How long clients keep running after the faults healed; some request must succeed in it. */
const RECOVERY_MS = 8_000;
const POLL_MS = 200;
/** Lines of differences listed when the state changed across the final restart. */
const MAX_DIFF_LINES = 20;
const BASE_FAULT_LAYERS = 'fsync-delay-ms=0,fsync-fail-after=1000000000';
const POWER_LOSS_LAYER = 'power-loss-journal';

export interface RunResult {
  readonly report: ChaosReport;
  /** Where the JSON report was written. */
  readonly path: string;
}

/** Runs one chaos run and writes its report; `log` receives progress lines. */
export async function runChaos(
  options: ChaosOptions,
  log: (line: string) => void = () => {},
): Promise<RunResult> {
  const started = performance.now();
  const clock = () => performance.now() - started;
  const dir = mkdtempSync(join(tmpdir(), 'divan-chaos-'));
  const http = new NodeHttp(CREDENTIALS);
  const state = new RunState(options, clock);
  let cluster: ChaosCluster | null = null;
  let network: ChaosNetwork | null = null;
  try {
    const ports = await freePorts(options.nodes * 2);
    cluster = new ChaosCluster(
      {
        dir,
        ports,
        credentials: CREDENTIALS,
        faultLayers: options.powerLoss
          ? `${POWER_LOSS_LAYER},${BASE_FAULT_LAYERS}`
          : BASE_FAULT_LAYERS,
        extraArgs: [
          ...(options.unsafeAckBeforeFsync ? ['--unsafe-ack-before-fsync'] : []),
          ...options.plantedBugs.flatMap((bug) => ['--planted-bug', bug]),
        ],
      },
      http,
      clock,
      options.nodes,
    );
    network = await ChaosNetwork.start(cluster.nodes, new Set(ports));
    cluster.attachNetwork(network);
    await runPhases(options, cluster, network, state, log);
  } catch (error) {
    state.error = error instanceof Error ? (error.stack ?? error.message) : String(error);
    log(`harness error: ${state.error}`);
  } finally {
    await cluster?.killAll();
    await network?.close();
    await http.close();
  }
  const report = state.report(network, options.keepData ? dir : null);
  if (!options.keepData) rmSync(dir, { recursive: true, force: true });
  const path = saveReport(report, options.resultsDir);
  if (options.saveHistory) log(`history: ${saveHistory(path, state.history)}`);
  return { report, path };
}

/** What a run gathers on its way to the report. */
class RunState {
  readonly history: ClientHistory;
  readonly anomalies: string[] = [];
  readonly violations: Violation[] = [];
  readonly startedAt = new Date().toISOString();
  nemesis: Nemesis | null = null;
  observer: LeaderObserver | null = null;
  faultWindow = { fromMs: 0, toMs: 0 };
  linearizability = { documents: 0, operations: 0, elapsedMs: 0 };
  minimums: MinimumsResult | null = null;
  error: string | null = null;

  constructor(
    readonly options: ChaosOptions,
    readonly clock: () => number,
  ) {
    this.history = new ClientHistory(clock);
  }

  report(network: ChaosNetwork | null, dataDir: string | null): ChaosReport {
    const records = this.history.records;
    const events = this.nemesis?.events ?? [];
    const violations = [...this.violations, ...(this.nemesis?.violations ?? [])];
    let verdict: Verdict = 'pass';
    if (this.minimums !== null && this.minimums.shortfalls.length > 0) verdict = 'too_weak';
    if (this.error !== null) verdict = 'error';
    if (violations.length > 0) verdict = 'violation';
    return {
      version: REPORT_VERSION,
      verdict,
      replay: replayCommand(this.options),
      options: this.options,
      startedAt: this.startedAt,
      elapsedMs: Math.round(this.clock()),
      requests: countRequests(records),
      faults: countFaults(events),
      faultEvents: events,
      leaderChanges: this.observer?.leaderChanges ?? 0,
      leaders: this.observer?.sightings ?? [],
      unavailability: longestUnavailability(
        records,
        events,
        this.faultWindow.fromMs,
        this.faultWindow.toMs,
      ),
      linearizability: this.linearizability,
      minimums: this.minimums,
      violations: withRequests(violations, records),
      anomalies: this.anomalies,
      network: network?.counters() ?? {
        connections: 0,
        refusedConnections: 0,
        forwardedBytes: 0,
        droppedBytes: 0,
      },
      error: this.error,
      dataDir,
    };
  }
}

async function runPhases(
  options: ChaosOptions,
  cluster: ChaosCluster,
  network: ChaosNetwork,
  state: RunState,
  log: (line: string) => void,
): Promise<void> {
  log(`starting ${options.nodes} nodes`);
  await Promise.all(cluster.nodes.map((node) => cluster.start(node)));
  await createDatabase(cluster);
  const observer = new LeaderObserver(cluster, DB);
  state.observer = observer;
  await waitUntil('a leader of the database', () =>
    observer.findLeader().then((leader) => leader !== null),
  );

  const nemesis = new Nemesis(cluster, network, observer, DB, options.seed);
  state.nemesis = nemesis;
  const clients = startClients(options, cluster, state);
  observer.start();

  const durationMs = options.durationSec * 1000;
  const fromMs = cluster.clock();
  state.faultWindow = { fromMs, toMs: fromMs + durationMs };
  const schedule = buildSchedule({ seed: options.seed, durationMs, kinds: options.faults });
  log(`fault phase: ${schedule.length} faults over ${options.durationSec} s`);
  await nemesis.run(schedule, fromMs, fromMs + durationMs);
  const left = fromMs + durationMs - cluster.clock();
  if (left > 0) await sleep(left);
  state.faultWindow = { fromMs, toMs: cluster.clock() };

  log('healing every fault');
  await nemesis.healAll();
  const healedAt = cluster.clock();
  await sleep(RECOVERY_MS);
  for (const client of clients.list) client.stop();
  await Promise.all(clients.runs);
  observer.stop();
  const recovered = state.history.records.some(
    (record) => record.outcome === 'ok' && record.call >= healedAt && record.kind !== 'read',
  );
  if (!recovered) {
    state.violations.push({
      kind: 'no_availability_after_heal',
      message: `no write succeeded in the ${RECOVERY_MS} ms after every fault healed`,
    });
  }

  log('waiting for the replicas to converge');
  const finalState = await checkConvergedState(cluster, state, 'after the faults healed');
  if (finalState !== null) {
    const at = cluster.clock();
    for (const key of new Set(state.history.checkOps.map((op) => op.key))) {
      const document = finalState.get(key);
      state.history.addFinalRead(
        key,
        document === undefined || document.deleted || document.token === null
          ? { found: false }
          : { found: true, value: document.token, rev: document.rev },
        at,
      );
    }
  }

  log('killing the whole cluster at once and restarting it');
  await cluster.killAll();
  if (options.powerLoss) {
    for (const [i, node] of cluster.nodes.entries())
      await cluster.losePower(node, options.seed + i);
  }
  await Promise.all(cluster.nodes.map((node) => cluster.start(node)));
  const reopened = await checkConvergedState(cluster, state, 'after the whole cluster restarted');
  if (finalState !== null && reopened !== null) {
    const lines = diffStates(finalState, reopened, MAX_DIFF_LINES);
    if (lines.length > 0) {
      state.violations.push({
        kind: 'reopen',
        message: `the data changed across the final SIGKILL of the whole cluster:\n${lines.join('\n')}`,
      });
    }
  }

  log('checking the history');
  runChecks(options, state, finalState, reopened);
}

function startClients(
  options: ChaosOptions,
  cluster: ChaosCluster,
  state: RunState,
): { list: ChaosClient[]; runs: Promise<void>[] } {
  const random = new SimRandom(options.seed);
  const context: ClientContext = {
    db: DB,
    http: cluster.http,
    history: state.history,
    pool: new KeyPool(options.activeKeys, options.maxOpsPerDocument),
    timeoutMs: options.requestTimeoutMs,
    anomalies: state.anomalies,
  };
  const list = Array.from({ length: options.clients }, (_, i) => {
    const name = `c${i + 1}`;
    const node = cluster.nodes[i % cluster.nodes.length]!;
    return new ChaosClient(name, node, random.fork(i + 1), new ClientMemory(name), context);
  });
  return { list, runs: list.map((client) => client.run()) };
}

/** Waits for convergence, compares the replicas and reads the state; null if it never converged. */
async function checkConvergedState(
  cluster: ChaosCluster,
  state: RunState,
  when: string,
): Promise<Map<string, FinalDocument> | null> {
  const convergence = await waitForConvergence(cluster, DB, CONVERGENCE_TIMEOUT_MS);
  if (!convergence.converged) {
    state.violations.push({
      kind: 'no_convergence',
      message: `${when}, the replicas did not converge within ${CONVERGENCE_TIMEOUT_MS} ms: ${convergence.detail}`,
    });
    return null;
  }
  for (const difference of await compareReplicas(cluster, DB)) {
    state.violations.push({ kind: 'divergence', message: `${when}: ${difference}` });
  }
  const finalState = await readFinalState(cluster, cluster.nodes[0]!, DB);
  state.violations.push(...checkAcknowledgedWritesKept(state.history, finalState, when));
  return finalState;
}

function runChecks(
  options: ChaosOptions,
  state: RunState,
  finalState: Map<string, FinalDocument> | null,
  reopened: Map<string, FinalDocument> | null,
): void {
  const { history } = state;
  const linearizability = checkLinearizability(history, options.checkBudgetMs);
  state.linearizability = {
    documents: linearizability.documents,
    operations: linearizability.operations,
    elapsedMs: linearizability.elapsedMs,
  };
  state.violations.push(...linearizability.violations);
  const states = [finalState, reopened].filter(
    (map): map is Map<string, FinalDocument> => map !== null,
  );
  for (const map of states) state.violations.push(...checkFailedWritesInvisible(history, map));
  if (states.length === 0) state.violations.push(...checkFailedWritesInvisible(history, new Map()));
  state.violations.push(...dedupe(checkRevisionIdentity(history)));
  for (const anomaly of state.anomalies)
    state.violations.push({ kind: 'server_error', message: anomaly });
  state.minimums = checkMinimums(
    history.records,
    history,
    state.nemesis?.events ?? [],
    options.faults,
  );
}

function dedupe(violations: Violation[]): Violation[] {
  const seen = new Set<string>();
  return violations.filter((violation) => {
    if (seen.has(violation.message)) return false;
    seen.add(violation.message);
    return true;
  });
}

/** Creates the run's database through the first node, retrying until it exists. */
async function createDatabase(cluster: ChaosCluster): Promise<void> {
  const node = cluster.nodes[0]!;
  await waitUntil('the database to be created', async () => {
    const outcome = await cluster.http.send(
      node.httpPort,
      'PUT',
      `/${DB}`,
      undefined,
      SETUP_TIMEOUT_MS,
    );
    return outcome.kind === 'response' && (outcome.status === 201 || outcome.status === 412);
  });
  for (const other of cluster.nodes) {
    await waitUntil(`${other.name} to serve the database`, async () => {
      const outcome = await cluster.http.send(
        other.httpPort,
        'GET',
        `/${DB}`,
        undefined,
        SETUP_TIMEOUT_MS,
      );
      return outcome.kind === 'response' && outcome.status === 200;
    });
  }
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + SETUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(POLL_MS);
  }
  throw new Error(`timed out after ${SETUP_TIMEOUT_MS} ms waiting for ${what}`);
}

/** Distinct ports on 127.0.0.1 that were free a moment ago. */
async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('listen returned no port'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
