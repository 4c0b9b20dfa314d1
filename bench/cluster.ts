/**
 * `npm run bench -- cluster [options]`: replicated writes and reads of Divan side by side
 * with etcd and PouchDB Server, in one run, with one load generator, all on 127.0.0.1:
 * - `divan`: Divan, 3 nodes, default settings, admin authentication on;
 * - `etcd`: etcd 3.4 from Debian's `etcd-server` (installed with apt-get when missing), 3
 *   members, through its v3 HTTP/JSON gateway;
 * - `pouchdb`: PouchDB Server 4.2, 1 node, LevelDB store, replicating nothing;
 * - `divan-1`: Divan, 1 node, to show what replication costs.
 *
 * The scenarios are described in bench/load/scenarios.ts. For every scenario and metric one
 * line compares Divan (3 nodes) with each peer in the format of bench/report.ts, where a
 * ratio above 1 means Divan is better; a peer that could not run is reported unavailable,
 * never estimated. Then one `target` line per target of the performance work says whether it
 * was met. Progress, per-run status censuses and per-node CPU and memory go to stderr; all of
 * it goes to bench/results/cluster-<time>.json (`cluster-quick-` with `--quick`, and
 * `cluster-partial-` or `cluster-quick-partial-` when `--systems` or `--scenarios` leave
 * some out).
 *
 * `--profile` instead runs scenarios 1, 2, 3 and 5 against a fresh 3-node Divan cluster each,
 * every node under `node --cpu-prof`, and prints where each node's CPU time went: self time
 * by layer and the top functions (JSON in bench/results/cluster-profile-<time>.json).
 *
 * Options:
 *   --quick                 short runs of every scenario: 0.5 s runs, 10 databases in
 *                           scenario 5, 1 kill, 1,000 catch-up writes, 2 s request timeout
 *   --seconds S             length of each run of scenarios 1 to 5 (10; 0.5 with --quick)
 *   --warm-up S             unmeasured load before each of those runs (3; 0.2 with --quick)
 *   --burn-in S             unmeasured scenario-2 load per system before its first scenario
 *                           (30; 0 with --quick)
 *   --kills N               leader kills in scenario 6 (20; 1 with --quick)
 *   --catch-up-writes N     writes a follower misses in scenario 7 (100,000; 1,000 with --quick)
 *   --systems LIST          systems to run, of divan,etcd,pouchdb,divan-1 (all)
 *   --scenarios LIST        scenarios to run, of 1,2,2-open,3,4,5,6,7 (all; 4 needs 2)
 *   --profile               the profiling pass described above
 *   --profile-dir DIR       keep the .cpuprofile files in DIR (default: a temp dir, removed)
 *   --logs-dir DIR          keep each Divan node's log in DIR (default: removed with the data)
 *   --help                  print these options
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './load/generator.js';
import {
  type CatchUpResult,
  describeUsage,
  type FailoverResult,
  FULL_SIZES,
  QUICK_SIZES,
  type RunRecord,
  ScenarioRunner,
  type ScenarioSizes,
} from './load/scenarios.js';
import { type ProfileSummary, profilesIn, summariseProfile } from './peers/cpu-profile.js';
import { DivanCluster } from './peers/divan.js';
import { EtcdCluster, findOrInstallEtcd } from './peers/etcd.js';
import { machineFacts, measureFsync } from './peers/machine.js';
import { PouchServer } from './peers/pouchdb.js';
import { killAllChildren } from './peers/process.js';
import type { BenchSystem } from './peers/system.js';
import { BenchReport, type Direction, progress } from './report.js';

const SYSTEMS = ['divan', 'etcd', 'pouchdb', 'divan-1'] as const;
type SystemName = (typeof SYSTEMS)[number];
const PEERS: readonly SystemName[] = ['etcd', 'pouchdb', 'divan-1'];
/** Peers with Raft terms, so with leader changes to compare. */
const REPLICATED_PEERS: readonly SystemName[] = ['etcd', 'divan-1'];
const SCENARIOS = ['1', '2', '2-open', '3', '4', '5', '6', '7'] as const;
type ScenarioName = (typeof SCENARIOS)[number];
/** Scenarios that kill or stop nodes: only systems with several nodes run them. */
const FAULT_SCENARIOS: readonly ScenarioName[] = ['6', '7'];
const DATABASE = 'bench';
/** The open-loop run's rate, as a fraction of the lower scenario-2 rate of Divan and etcd. */
const OPEN_LOOP_RATE_FRACTION = 0.7;
const FSYNC_PROBE_WRITES = 2000;
const FSYNC_PROBE_SECONDS = 3;
const FSYNC_PROBE_SECONDS_QUICK = 1;
const PROFILE_SCENARIOS: readonly ScenarioName[] = ['1', '2', '3', '5'];
const PROFILE_TOP_FUNCTIONS = 25;
const PROFILE_PRINTED_LAYERS = 12;
const PROFILE_PRINTED_FUNCTIONS = 15;
const MIB = 1024 * 1024;
/** The target reads "300 MB": 10^6 bytes to the MB, not 2^20. */
const MB = 1_000_000;
const INTERRUPTED_EXIT_CODE = 130;
const MS_PER_SECOND = 1000;
const PERCENTILE_99 = 0.99;

interface Options {
  quick: boolean;
  sizes: ScenarioSizes;
  systems: SystemName[];
  scenarios: ScenarioName[];
  profile: boolean;
  profileDir: string | null;
  logsDir: string | null;
}

/** Everything one run measured, keyed by system name, then scenario. */
interface Results {
  runs: Map<SystemName, Map<string, RunRecord>>;
  failovers: Map<SystemName, FailoverResult>;
  catchUps: Map<SystemName, CatchUpResult>;
}

interface Peer {
  readonly name: SystemName;
  readonly system: BenchSystem | null;
  /** The reason the system did not run, or null when it ran. */
  readonly unavailable: string | null;
}

export async function main(args: string[]): Promise<void> {
  if (args.includes('--help')) {
    printHelp();
    return;
  }
  const options = parseOptions(args);
  const dir = mkdtempSync(join(tmpdir(), 'divan-bench-cluster-'));
  const peers: Peer[] = [];
  // If the benchmark is interrupted or fails, no server it started may outlive it.
  const interrupted = () => {
    killAllChildren();
    rmSync(dir, { recursive: true, force: true });
    process.exit(INTERRUPTED_EXIT_CODE);
  };
  process.once('exit', killAllChildren);
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    if (options.profile) await profileMain(options, dir);
    else await benchmarkMain(options, dir, peers);
  } finally {
    progress('stopping every server');
    // The data is removed next, so a graceful shutdown would only cost time.
    await Promise.all(peers.map((peer) => peer.system?.close('SIGKILL')));
    progress('stopped every server');
    process.removeListener('exit', killAllChildren);
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchmarkMain(options: Options, dir: string, peers: Peer[]): Promise<void> {
  const report = new BenchReport(reportName(options));
  const machine = machineFacts();
  const fsync = measureFsync(
    dir,
    FSYNC_PROBE_WRITES,
    options.quick ? FSYNC_PROBE_SECONDS_QUICK : FSYNC_PROBE_SECONDS,
  );
  progress(
    `fsync probe in ${dir}: ${Math.round(fsync.perSecond)}/s, p50 ${fsync.latency.p50Ms.toFixed(3)} ms, ` +
      `p99 ${fsync.latency.p99Ms.toFixed(3)} ms (4 KiB append + fdatasync)`,
  );
  peers.push(...(await startSystems(options, dir)));
  const results = await runScenarios(options, peers);
  printComparisons(report, options, results, peers);
  const targets = evaluateTargets(results, options.sizes);
  for (const target of targets) console.log(formatTarget(target));
  report.save({
    options: { quick: options.quick, sizes: options.sizes, scenarios: options.scenarios },
    machine: { ...machine, loadAverageAtEnd: machineFacts().loadAverage },
    fsync,
    systems: peers.map((peer) => ({
      name: peer.name,
      available: peer.system !== null,
      description: peer.system?.description ?? null,
      unavailable: peer.unavailable,
    })),
    runs: [...results.runs.values()].flatMap((runs) => [...runs.values()]),
    failovers: Object.fromEntries(results.failovers),
    catchUps: Object.fromEntries(results.catchUps),
    targets,
  });
}

/**
 * The results' file name: a run of only some systems or scenarios is `cluster-partial`, so it
 * never replaces `cluster-latest.json` or `cluster-quick-latest.json`.
 */
function reportName(options: Options): string {
  const partial =
    options.systems.length < SYSTEMS.length || options.scenarios.length < SCENARIOS.length;
  const mode = options.quick ? 'cluster-quick' : 'cluster';
  return partial ? `${mode}-partial` : mode;
}

/** Starts every chosen system at once; a system that fails to start is unavailable. */
async function startSystems(options: Options, dir: string): Promise<Peer[]> {
  const start = async (name: SystemName): Promise<Peer> => {
    const systemDir = join(dir, name);
    mkdirSync(systemDir, { recursive: true });
    try {
      if (name === 'divan' || name === 'divan-1') {
        const nodes = name === 'divan' ? 3 : 1;
        const system = await DivanCluster.start({
          name,
          nodes,
          dir: systemDir,
          ...(options.logsDir === null ? {} : { logsDir: options.logsDir }),
        });
        return { name, system, unavailable: null };
      }
      if (name === 'pouchdb')
        return { name, system: await PouchServer.start(systemDir), unavailable: null };
      const etcd = findOrInstallEtcd();
      if (!etcd.available) return { name, system: null, unavailable: etcd.reason };
      return { name, system: await EtcdCluster.start(systemDir, etcd.version), unavailable: null };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { name, system: null, unavailable: `failed to start: ${reason}` };
    }
  };
  const peers = await Promise.all(options.systems.map(start));
  for (const peer of peers) {
    if (peer.system === null) progress(`${peer.name} is unavailable: ${peer.unavailable}`);
    else progress(`${peer.name}: ${peer.system.description}`);
  }
  return peers;
}

/** Runs scenario by scenario, every system in turn, so the systems share machine conditions. */
async function runScenarios(options: Options, peers: readonly Peer[]): Promise<Results> {
  const results: Results = { runs: new Map(), failovers: new Map(), catchUps: new Map() };
  const runners = new Map<SystemName, ScenarioRunner>();
  const many = ScenarioRunner.manyDatabases(options.sizes.databases);
  const namespaces = options.scenarios.includes('5') ? [DATABASE, ...many] : [DATABASE];
  const live = peers.filter((peer) => peer.system !== null);
  progress(`creating ${namespaces.length} database(s) on ${live.map((p) => p.name).join(', ')}`);
  // Set-up, not measured: every system creates its databases at once.
  const create = async (peer: Peer) => {
    const startMs = performance.now();
    await peer.system!.createNamespaces(namespaces);
    const seconds = (performance.now() - startMs) / MS_PER_SECOND;
    progress(`${peer.name}: databases created in ${seconds.toFixed(1)} s`);
  };
  await Promise.all(live.map(create));
  for (const peer of live) {
    runners.set(peer.name, new ScenarioRunner(peer.system!, options.sizes, DATABASE));
    results.runs.set(peer.name, new Map());
  }
  // A JIT-compiled server is measured once it has settled: each system in turn gets the same
  // unmeasured load first, so the runs below compare steady states.
  if (options.sizes.burnInSeconds > 0) {
    for (const runner of runners.values()) {
      const load = await runner.burnIn();
      progress(
        `${runner.system.name} burn-in: ${load.items} writes in ${load.elapsedSeconds.toFixed(1)} s ` +
          `(${Math.round(load.itemsPerSecond)}/s)`,
      );
    }
  }
  for (const scenario of options.scenarios) {
    const rate = scenario === '2-open' ? openLoopRate(results) : 0;
    for (const [name, runner] of runners) {
      if (FAULT_SCENARIOS.includes(scenario) && runner.system.nodes.length < 2) continue;
      if (scenario === '2-open' && (name === 'pouchdb' || name === 'divan-1')) continue;
      const runs = results.runs.get(name)!;
      if (scenario === '1') runs.set('1', await runner.sequentialWrites());
      else if (scenario === '2') runs.set('2', await runner.spreadWrites());
      else if (scenario === '2-open') runs.set('2-open', await runner.spreadWritesAtRate(rate));
      else if (scenario === '3') runs.set('3', await runner.bulkWrites());
      else if (scenario === '4') runs.set('4', await runner.reads());
      else if (scenario === '5') runs.set('5', await runner.manyDatabaseWrites(many));
      else if (scenario === '6') {
        const failover = await runner.failover();
        results.failovers.set(name, failover);
        runs.set('6', failover.run);
      } else {
        const catchUp = await runner.catchUp();
        results.catchUps.set(name, catchUp);
        runs.set('7', catchUp.run);
        progress(`${name} catch-up: ${describeCatchUp(catchUp)}`);
      }
    }
  }
  return results;
}

function openLoopRate(results: Results): number {
  const rates = (['divan', 'etcd'] as const)
    .map((name) => results.runs.get(name)?.get('2')?.load.itemsPerSecond)
    .filter((rate): rate is number => rate !== undefined && rate > 0);
  if (rates.length === 0) throw new Error('scenario 2-open needs scenario 2 to run first');
  return Math.max(1, Math.round(Math.min(...rates) * OPEN_LOOP_RATE_FRACTION));
}

function describeCatchUp(result: CatchUpResult): string {
  const seconds = result.secondsFromRestart;
  return (
    `${result.follower} applied index ${result.targetIndex} ` +
    `${seconds === null ? 'never (timed out)' : `${seconds.toFixed(2)} s after its restart`}, ` +
    `snapshots received ${result.snapshotsReceived}`
  );
}

/** Prints one line per scenario, metric and peer. */
function printComparisons(
  report: BenchReport,
  options: Options,
  results: Results,
  peers: readonly Peer[],
): void {
  const value = (system: SystemName, scenario: string, pick: (run: RunRecord) => number) => {
    const run = results.runs.get(system)?.get(scenario);
    return run === undefined ? undefined : pick(run);
  };
  const line = (
    scenario: string,
    metric: string,
    unit: string,
    direction: Direction,
    pick: (run: RunRecord) => number,
    peerNames: readonly SystemName[] = PEERS,
  ) => {
    const divan = value('divan', scenario, pick);
    if (divan === undefined) return;
    for (const peer of peerNames) {
      compareOrNote(
        report,
        scenario,
        metric,
        unit,
        direction,
        divan,
        peers,
        peer,
        value(peer, scenario, pick),
      );
    }
  };
  const throughput = (run: RunRecord) => run.load.itemsPerSecond;
  const p50 = (run: RunRecord) => run.load.latency.p50Ms;
  const p99 = (run: RunRecord) => run.load.latency.p99Ms;
  line('1', 'writes/s', 'writes/s', 'higher-is-better', throughput);
  line('1', 'p50 latency', 'ms', 'lower-is-better', p50);
  line('1', 'p99 latency', 'ms', 'lower-is-better', p99);
  line('2', 'writes/s', 'writes/s', 'higher-is-better', throughput);
  line('2', 'p50 latency', 'ms', 'lower-is-better', p50);
  line('2', 'p99 latency', 'ms', 'lower-is-better', p99);
  line('2-open', 'p50 latency at the same rate', 'ms', 'lower-is-better', p50, ['etcd']);
  line('2-open', 'p99 latency at the same rate', 'ms', 'lower-is-better', p99, ['etcd']);
  line('3', 'documents/s', 'documents/s', 'higher-is-better', throughput);
  line('4', 'reads/s', 'reads/s', 'higher-is-better', throughput);
  line('4', 'p50 latency', 'ms', 'lower-is-better', p50);
  line('4', 'p99 latency', 'ms', 'lower-is-better', p99);
  line('5', 'writes/s', 'writes/s', 'higher-is-better', throughput);
  line('5', 'writes/s as a ratio to scenario 2', 'ratio', 'higher-is-better', (run) =>
    manyToOne(results, run.system as SystemName),
  );
  printFailover(report, options, results, peers);
  printCatchUp(report, results, peers);
  for (const scenario of options.scenarios) {
    line(
      scenario,
      'CPU seconds per 1,000 items',
      's',
      'lower-is-better',
      (run) => run.cpuSecondsPerThousand,
    );
    line(scenario, 'CPU seconds of all nodes', 's', 'lower-is-better', (run) =>
      sum(run.usage.map((node) => node.cpuSeconds)),
    );
    line(scenario, 'CPU seconds of the busiest node', 's', 'lower-is-better', (run) =>
      Math.max(0, ...run.usage.map((node) => node.cpuSeconds)),
    );
    line(
      scenario,
      'peak resident memory of a node',
      'MiB',
      'lower-is-better',
      (run) => run.maxPeakResidentBytes / MIB,
    );
    line(
      scenario,
      'leader changes',
      'elections',
      'lower-is-better',
      (run) => run.leaderChanges ?? 0,
      REPLICATED_PEERS,
    );
  }
  printRunDetails(results);
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}

function manyToOne(results: Results, system: SystemName): number {
  const many = results.runs.get(system)?.get('5')?.load.itemsPerSecond ?? 0;
  const one = results.runs.get(system)?.get('2')?.load.itemsPerSecond ?? 0;
  return one > 0 ? many / one : 0;
}

/**
 * Prints a comparison line when both figures are positive; otherwise a line of the same form
 * with `ratio=n/a` (a zero, e.g. no failed requests, has no meaningful ratio), or with the
 * peer `unavailable` and the reason on stderr.
 */
function compareOrNote(
  report: BenchReport,
  scenario: string,
  metric: string,
  unit: string,
  direction: Direction,
  divan: number,
  peers: readonly Peer[],
  peer: SystemName,
  peerValue: number | undefined,
): void {
  const entry = peers.find((candidate) => candidate.name === peer);
  if (entry === undefined) return;
  if (entry.system === null) {
    console.log(
      `${scenario} ${metric}: divan=${format(divan)} ${peer}=unavailable ratio=n/a (${unit})`,
    );
    return;
  }
  if (peerValue === undefined) return;
  if (divan > 0 && peerValue > 0 && Number.isFinite(divan) && Number.isFinite(peerValue)) {
    report.compare(scenario, metric, unit, direction, divan, peer, peerValue);
    return;
  }
  console.log(
    `${scenario} ${metric}: divan=${format(divan)} ${peer}=${format(peerValue)} ratio=n/a (${unit})`,
  );
}

function format(value: number): string {
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

function printFailover(
  report: BenchReport,
  options: Options,
  results: Results,
  peers: readonly Peer[],
): void {
  const divan = results.failovers.get('divan');
  if (divan === undefined) return;
  const etcd = results.failovers.get('etcd');
  const figures = (result: FailoverResult) => ({
    p50: recoveryPercentile(result, 0.5, options.sizes),
    p99: recoveryPercentile(result, PERCENTILE_99, options.sizes),
    failed: failedRequests(result.run.load),
    timedOut: result.recoveriesMs.filter((ms) => ms === null).length,
  });
  const mine = figures(divan);
  const theirs = etcd === undefined ? undefined : figures(etcd);
  const row = (metric: string, unit: string, pick: (f: ReturnType<typeof figures>) => number) =>
    compareOrNote(
      report,
      '6',
      metric,
      unit,
      'lower-is-better',
      pick(mine),
      peers,
      'etcd',
      theirs && pick(theirs),
    );
  row('first write after a kill p50', 'ms', (f) => f.p50);
  row('first write after a kill p99', 'ms', (f) => f.p99);
  row('failed requests', 'requests', (f) => f.failed);
  row('kills with no write within the wait', 'kills', (f) => f.timedOut);
}

/**
 * Returns a percentile of the recovery times (nearest rank). A kill with no recovery counts as
 * the whole wait.
 */
function recoveryPercentile(
  result: FailoverResult,
  fraction: number,
  sizes: ScenarioSizes,
): number {
  const waitMs = sizes.failoverWaitSeconds * MS_PER_SECOND;
  const sorted = result.recoveriesMs.map((ms) => ms ?? waitMs).sort((a, b) => a - b);
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * fraction) - 1)]!;
}

function failedRequests(load: LoadResult): number {
  return load.requests - load.successfulRequests;
}

function printCatchUp(report: BenchReport, results: Results, peers: readonly Peer[]): void {
  const divan = results.catchUps.get('divan');
  if (divan === undefined) return;
  const etcd = results.catchUps.get('etcd');
  compareOrNote(
    report,
    '7',
    'seconds from restart to applied',
    's',
    'lower-is-better',
    divan.secondsFromRestart ?? Number.POSITIVE_INFINITY,
    peers,
    'etcd',
    etcd === undefined ? undefined : (etcd.secondsFromRestart ?? Number.POSITIVE_INFINITY),
  );
  compareOrNote(
    report,
    '7',
    'writes/s with a follower down',
    'writes/s',
    'higher-is-better',
    divan.run.load.itemsPerSecond,
    peers,
    'etcd',
    etcd?.run.load.itemsPerSecond,
  );
  compareOrNote(
    report,
    '7',
    'writes the follower missed',
    'writes',
    'higher-is-better',
    divan.run.load.items,
    peers,
    'etcd',
    etcd?.run.load.items,
  );
  report.measure('7', 'snapshots the follower received', 'snapshots', divan.snapshotsReceived);
  if (etcd !== undefined) {
    progress(`etcd scenario 7: snapshots the follower received: ${etcd.snapshotsReceived}`);
  }
}

/** Per run, on stderr: the status census and each node's CPU and memory. */
function printRunDetails(results: Results): void {
  for (const [system, runs] of results.runs) {
    for (const [scenario, run] of runs) {
      const census = Object.entries(run.load.census)
        .map(([key, count]) => `${key}=${count}`)
        .join(' ');
      progress(`${system} scenario ${scenario}: statuses ${census}; ${describeUsage(run)}`);
    }
  }
}

interface Target {
  readonly name: string;
  readonly value: number | null;
  readonly aim: string;
  readonly met: boolean | null;
}

/** Checks the targets of the performance work against this run (null: not measured). */
function evaluateTargets(results: Results, sizes: ScenarioSizes): Target[] {
  const run = (system: SystemName, scenario: string) => results.runs.get(system)?.get(scenario);
  const ratio = (scenario: string, peer: SystemName, pick: (r: RunRecord) => number) => {
    const mine = run('divan', scenario);
    const theirs = run(peer, scenario);
    return mine === undefined || theirs === undefined || pick(theirs) === 0
      ? null
      : pick(mine) / pick(theirs);
  };
  const throughput = (r: RunRecord) => r.load.itemsPerSecond;
  const target = (
    name: string,
    value: number | null,
    aim: string,
    met: (v: number) => boolean,
  ): Target => ({
    name,
    value,
    aim,
    met: value === null ? null : met(value),
  });
  const failover = results.failovers.get('divan');
  const otherChanges = [...(results.runs.get('divan')?.values() ?? [])]
    .filter((r) => r.scenario !== '6')
    .map((r) => r.leaderChanges ?? 0);
  const divanPeaks = [...(results.runs.get('divan')?.values() ?? [])].flatMap((r) =>
    r.usage.map((node) => Math.max(node.peakResidentBytes, node.lifetimePeakBytes ?? 0)),
  );
  return [
    target('scenario 2 writes/s / etcd', ratio('2', 'etcd', throughput), '>= 1.0', (v) => v >= 1),
    target(
      'scenario 2 p99 / etcd p99',
      ratio('2', 'etcd', (r) => r.load.latency.p99Ms),
      '<= 1.5',
      (v) => v <= 1.5,
    ),
    target(
      'scenario 1 p50 / etcd p50',
      ratio('1', 'etcd', (r) => r.load.latency.p50Ms),
      '<= 1.5',
      (v) => v <= 1.5,
    ),
    target(
      'scenario 3 documents/s / etcd',
      ratio('3', 'etcd', throughput),
      '>= 1.0',
      (v) => v >= 1,
    ),
    target(
      'scenario 2 writes/s / pouchdb',
      ratio('2', 'pouchdb', throughput),
      '>= 3',
      (v) => v >= 3,
    ),
    target(
      'scenario 3 documents/s / pouchdb',
      ratio('3', 'pouchdb', throughput),
      '>= 3',
      (v) => v >= 3,
    ),
    target(
      'scenario 5 writes/s / scenario 2 writes/s',
      run('divan', '5') && run('divan', '2') ? manyToOne(results, 'divan') : null,
      '>= 0.7',
      (v) => v >= 0.7,
    ),
    target(
      'scenario 6 first write after a kill, p99 (ms)',
      failover === undefined ? null : recoveryPercentile(failover, PERCENTILE_99, sizes),
      '< 1000',
      (v) => v < 1000,
    ),
    target(
      'leader changes outside scenario 6',
      otherChanges.length === 0 ? null : otherChanges.reduce((a, b) => a + b, 0),
      '= 0',
      (v) => v === 0,
    ),
    target(
      'largest resident memory of a Divan node (MB)',
      divanPeaks.length === 0 ? null : Math.max(...divanPeaks) / MB,
      '< 300',
      (v) => v < 300,
    ),
  ];
}

function formatTarget(target: Target): string {
  const value = target.value === null ? 'not measured' : format(target.value);
  let verdict = 'not measured';
  if (target.met !== null) verdict = target.met ? 'met' : 'missed';
  return `target ${target.name}: ${value} (aim ${target.aim}) ${verdict}`;
}

/** Runs the profiling pass: scenarios 1, 2, 3 and 5, each on a fresh cluster under `--cpu-prof`. */
async function profileMain(options: Options, dir: string): Promise<void> {
  const report = new BenchReport('cluster-profile');
  const profileRoot = options.profileDir ?? join(dir, 'profiles');
  const summaries: Array<{
    scenario: string;
    node: string;
    role: string;
    summary: ProfileSummary;
  }> = [];
  const runs: RunRecord[] = [];
  for (const scenario of PROFILE_SCENARIOS.filter((s) => options.scenarios.includes(s))) {
    const profileDir = join(profileRoot, `scenario-${scenario}`);
    const cluster = await DivanCluster.start({
      name: 'divan',
      nodes: 3,
      dir: join(dir, `scenario-${scenario}`),
      profileDir,
    });
    let leaderName = '';
    try {
      const many = ScenarioRunner.manyDatabases(options.sizes.databases);
      await cluster.createNamespaces(scenario === '5' ? [DATABASE, ...many] : [DATABASE]);
      // In scenario 5 the leaders of the many databases are spread over the nodes, so the role
      // printed is that of the first database's leader.
      leaderName = (await cluster.leader(DATABASE)).name;
      const runner = new ScenarioRunner(cluster, options.sizes, DATABASE);
      const run =
        scenario === '1'
          ? await runner.sequentialWrites()
          : scenario === '2'
            ? await runner.spreadWrites()
            : scenario === '3'
              ? await runner.bulkWrites()
              : await runner.manyDatabaseWrites(many);
      runs.push(run);
      report.measure(scenario, 'items/s under --cpu-prof', 'items/s', run.load.itemsPerSecond);
    } finally {
      await cluster.close();
    }
    for (const node of cluster.nodes) {
      for (const file of profilesIn(join(profileDir, node.name))) {
        const role = node.name === leaderName ? 'leader' : 'follower';
        const summary = summariseProfile(file, PROFILE_TOP_FUNCTIONS);
        summaries.push({ scenario, node: node.name, role, summary });
        const cpuSeconds = runs.at(-1)?.usage.find((usage) => usage.node === node.name)?.cpuSeconds;
        printProfile(scenario, node.name, role, summary, cpuSeconds ?? null);
      }
    }
  }
  report.save({ sizes: options.sizes, runs, profiles: summaries, profileDir: options.profileDir });
}

/**
 * Prints one node's profile summary. The profile spans the node's whole life, start-up
 * included; `cpuSeconds` is the node's CPU time from /proc during the measured run only.
 */
function printProfile(
  scenario: string,
  node: string,
  role: string,
  summary: ProfileSummary,
  cpuSeconds: number | null,
): void {
  const busy = summary.durationMs > 0 ? (summary.busyMs / summary.durationMs) * 100 : 0;
  const cpu = cpuSeconds === null ? '' : `; ${cpuSeconds.toFixed(1)} s CPU in the run (/proc)`;
  console.log(
    `\nscenario ${scenario}, ${node} (${role}): ${(summary.busyMs / 1000).toFixed(1)} s busy of ` +
      `${(summary.durationMs / 1000).toFixed(1)} s (${busy.toFixed(0)}%)${cpu}`,
  );
  console.log('  self time by layer, % of busy:');
  for (const layer of summary.layers.slice(0, PROFILE_PRINTED_LAYERS)) {
    console.log(`    ${layer.percentOfBusy.toFixed(1).padStart(5)}%  ${layer.name}`);
  }
  console.log('  top functions by self time, % of busy:');
  for (const fn of summary.functions.slice(0, PROFILE_PRINTED_FUNCTIONS)) {
    console.log(`    ${fn.percentOfBusy.toFixed(1).padStart(5)}%  ${fn.name}  ${fn.location}`);
  }
}

function parseOptions(args: string[]): Options {
  const quick = args.includes('--quick');
  const options: Options = {
    quick,
    sizes: quick ? QUICK_SIZES : FULL_SIZES,
    systems: [...SYSTEMS],
    scenarios: [...SCENARIOS],
    profile: false,
    profileDir: null,
    logsDir: null,
  };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!;
    if (name === '--quick') continue;
    if (name === '--profile') {
      options.profile = true;
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new Error(`option ${name} needs a value`);
    if (name === '--seconds')
      options.sizes = { ...options.sizes, runSeconds: positive(name, value) };
    else if (name === '--warm-up')
      options.sizes = { ...options.sizes, warmUpSeconds: nonNegative(name, value) };
    else if (name === '--burn-in')
      options.sizes = { ...options.sizes, burnInSeconds: nonNegative(name, value) };
    else if (name === '--kills')
      options.sizes = { ...options.sizes, failoverKills: positive(name, value) };
    else if (name === '--catch-up-writes')
      options.sizes = { ...options.sizes, catchUpWrites: positive(name, value) };
    else if (name === '--systems') options.systems = listOf(name, value, SYSTEMS);
    else if (name === '--scenarios') options.scenarios = listOf(name, value, SCENARIOS);
    else if (name === '--profile-dir') options.profileDir = value;
    else if (name === '--logs-dir') options.logsDir = value;
    else throw new Error(`unknown option ${name}; see the header of bench/cluster.ts`);
  }
  if (!options.systems.includes('divan')) throw new Error('--systems must include divan');
  const needsTwo = options.scenarios.includes('4') || options.scenarios.includes('2-open');
  if (needsTwo && !options.scenarios.includes('2')) {
    throw new Error('--scenarios: scenarios 4 and 2-open need scenario 2, so list 2 as well');
  }
  return options;
}

/** Prints the options part of this file's header comment. */
function printHelp(): void {
  const source = readFileSync(
    fileURLToPath(new URL('../../bench/cluster.ts', import.meta.url)),
    'utf8',
  );
  const lines = source.split('\n');
  const first = lines.findIndex((line) => line.startsWith(' * Options:'));
  const end = lines.findIndex((line, i) => i > first && line.startsWith(' */'));
  console.log('npm run bench -- cluster [options]\n');
  for (const line of lines.slice(first, end)) console.log(line.replace(/^ \* ?/, ''));
}

function positive(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) {
    throw new Error(`${name}: expected a positive number, got "${value}"`);
  }
  return number;
}

function nonNegative(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isFinite(number) || number < 0) {
    throw new Error(`${name}: expected a number of at least 0, got "${value}"`);
  }
  return number;
}

function listOf<T extends string>(name: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',');
  for (const item of items) {
    if (!allowed.includes(item as T)) {
      throw new Error(`${name}: unknown item "${item}"; expected some of ${allowed.join(',')}`);
    }
  }
  return allowed.filter((item) => items.includes(item));
}
