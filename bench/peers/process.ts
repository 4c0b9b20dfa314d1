/**
 * Server processes of the cluster benchmark (Divan nodes, etcd members, PouchDB Server): one
 * `PeerProcess` per node, which starts, signals and restarts its child on the same arguments,
 * and reads the child's CPU time and resident memory from `/proc/<pid>`.
 *
 * Invariants: a `PeerProcess` has at most one live child at a time, and only the benchmark's
 * own children are ever signalled, by pid. CPU time survives restarts: the CPU seconds of
 * every earlier child are read from `/proc` just before it is signalled and kept, so
 * `cpuSeconds()` covers every child this object ever started. Time a child spends between
 * that read and its exit (a graceful shutdown, at most) is not counted.
 *
 * What this does not do: wait for a server to serve requests (each peer module does, over HTTP), or
 * run anywhere but Linux.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { assert } from '../../src/util/assert.js';

/** How long a child may take to exit after SIGTERM before it gets SIGKILL. */
const STOP_GRACE_MS = 10_000;
const BYTES_PER_KIB = 1024;
/** Linux's USER_HZ on every common configuration; `getconf CLK_TCK` confirms it below. */
const DEFAULT_CLOCK_TICKS_PER_SECOND = 100;
/** Fields of /proc/<pid>/stat after the `(comm)` field: state is 0, utime 11, stime 12. */
const STAT_UTIME_INDEX = 11;
const STAT_STIME_INDEX = 12;

const clockTicksPerSecond = readClockTicks();

/** Every child started and not yet exited, across all `PeerProcess` objects. */
const liveChildren = new Set<ChildProcess>();

/** SIGKILLs every live child by pid: the last resort when the benchmark itself ends early. */
export function killAllChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
}

function readClockTicks(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isSafeInteger(ticks) && ticks > 0 ? ticks : DEFAULT_CLOCK_TICKS_PER_SECOND;
  } catch {
    return DEFAULT_CLOCK_TICKS_PER_SECOND;
  }
}

/** User plus system CPU seconds of a live process, or null once it is gone. */
export function readCpuSeconds(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // The command name may contain spaces and parentheses, so split after its closing one.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[STAT_UTIME_INDEX]) + Number(fields[STAT_STIME_INDEX]);
  assert(Number.isFinite(ticks), () => `unreadable /proc/${pid}/stat: ${text}`);
  return ticks / clockTicksPerSecond;
}

/** Reads `VmRSS` or `VmHWM` of /proc/<pid>/status in bytes; null once the process is gone. */
export function readMemoryBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return match === null ? null : Number(match[1]) * BYTES_PER_KIB;
}

export interface ProcessSpec {
  /** Node name in output, e.g. `n1` or `etcd-2`. */
  readonly name: string;
  readonly command: string;
  /** Arguments of a start; `restartArgs` replaces them on later starts when given. */
  readonly args: readonly string[];
  readonly restartArgs?: readonly string[];
  readonly cwd?: string;
  readonly env?: Readonly<Record<string, string>>;
  /** File that receives the child's stdout and stderr (appended across restarts). */
  readonly logPath: string;
}

/** One server node of a benchmarked system, started and restarted by the benchmark. */
export class PeerProcess {
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  /** CPU seconds of children already signalled. */
  #pastCpuSeconds = 0;
  #starts = 0;

  constructor(readonly spec: ProcessSpec) {}

  get name(): string {
    return this.spec.name;
  }

  /** The live child's pid, or null when no child runs. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Spawns the child; the caller waits for it to serve. */
  start(): void {
    assert(this.#child === null, `${this.name} is already running`);
    const args =
      this.#starts > 0 && this.spec.restartArgs !== undefined
        ? this.spec.restartArgs
        : this.spec.args;
    const log = openSync(this.spec.logPath, 'a');
    const child = spawn(this.spec.command, args, {
      cwd: this.spec.cwd,
      env: { ...process.env, ...this.spec.env },
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.#starts += 1;
    this.#child = child;
    liveChildren.add(child);
    this.#exited = new Promise<void>((resolve) => {
      const gone = () => {
        liveChildren.delete(child);
        if (this.#child === child) this.#child = null;
        resolve();
      };
      child.once('exit', gone);
      child.once('error', gone);
    });
  }

  /**
   * Sends `signal` and waits for the child to exit; after SIGTERM or SIGINT, sends SIGKILL
   * if it has not exited within the grace time.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (child === null) return;
    this.#pastCpuSeconds += (child.pid === undefined ? null : readCpuSeconds(child.pid)) ?? 0;
    const exited = this.#exited;
    child.kill(signal);
    if (signal === 'SIGKILL') {
      await exited;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
    });
    const late = await Promise.race([exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** Resolves when the current child exits (at once when none runs). */
  exited(): Promise<void> {
    return this.#exited;
  }

  /** CPU seconds of every child this object started, the live one included. */
  cpuSeconds(): number {
    const pid = this.pid;
    return this.#pastCpuSeconds + ((pid === null ? null : readCpuSeconds(pid)) ?? 0);
  }

  /** Resident memory of the live child in bytes, or null when none runs. */
  residentBytes(): number | null {
    const pid = this.pid;
    return pid === null ? null : readMemoryBytes(pid, 'VmRSS');
  }

  /** Returns the live child's peak resident memory since it started (`VmHWM`), or null. */
  peakResidentBytes(): number | null {
    const pid = this.pid;
    return pid === null ? null : readMemoryBytes(pid, 'VmHWM');
  }
}
