/**
 * `divan compact NAME --url URL [--wait]`: starts the compaction of a database through
 * CouchDB's `POST /{db}/_compact`, against any node. With `--wait` it follows the database's
 * `database_compaction` tasks in `GET /_active_tasks` (one per node that compacts its copy),
 * with a progress bar per node on a terminal, until none is left, then prints the file size
 * before and after.
 *
 * A server that does not implement compaction returns 501. The command then prints that
 * and exits with status 1.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { request } from 'undici';
import { targetOf } from './remote.js';

export interface CompactOptions {
  readonly url: string;
  readonly wait: boolean;
  /** Milliseconds between two reads of `_active_tasks`. */
  readonly pollMs: number;
  /** Give up waiting after this many milliseconds. */
  readonly timeoutMs: number;
}

export const DEFAULT_POLL_MS = 500;
export const DEFAULT_WAIT_TIMEOUT_MS = 60 * 60_000;
/**
 * How long after `_compact` returns an empty task list still counts as "not started yet":
 * each node starts its own compaction when it learns of the request.
 */
const START_GRACE_MS = 1_500;
const PERCENT = 100;

/** CouchDB's fields of a `database_compaction` task that this command reads. */
interface CompactionTask {
  readonly type: string;
  readonly node?: string;
  readonly database?: string;
  readonly phase?: string;
  readonly progress?: number;
  readonly changes_done?: number;
  readonly total_changes?: number;
}

type Get = <T>(path: string) => Promise<{ status: number; body: T | null; text: string }>;

export async function runCompact(db: string, options: CompactOptions): Promise<number> {
  const { base, headers } = targetOf(options.url);
  const get: Get = async (path) => {
    const response = await request(new URL(path, base), { headers });
    const text = await response.body.text();
    return { status: response.statusCode, body: parseJson(text), text };
  };
  const dbPath = `/${encodeURIComponent(db)}`;
  try {
    const before = await fileSize(get, dbPath);
    const response = await request(new URL(`${dbPath}/_compact`, base), {
      method: 'POST',
      headers,
      body: '{}',
    });
    const text = (await response.body.text()).trim();
    if (response.statusCode === 501) {
      console.error(`divan compact: the server does not implement compaction (501 ${text})`);
      return 1;
    }
    if (response.statusCode !== 202 && response.statusCode !== 200) {
      console.error(
        `divan compact: POST ${dbPath}/_compact returned ${response.statusCode}: ${text}`,
      );
      return 1;
    }
    console.log(`compaction of ${db} started`);
    if (!options.wait) return 0;
    await waitForCompaction(get, db, options);
    const after = await fileSize(get, dbPath);
    console.log(
      `compaction of ${db} finished: file size ${formatBytes(before)} -> ${formatBytes(after)}`,
    );
    return 0;
  } catch (error) {
    console.error(`divan compact: ${(error as Error).message}`);
    return 1;
  }
}

async function fileSize(get: Get, dbPath: string): Promise<number> {
  const info = await get<{ sizes?: { file?: number } }>(dbPath);
  if (info.status !== 200)
    throw new Error(`GET ${dbPath} returned ${info.status}: ${info.text.trim()}`);
  return info.body?.sizes?.file ?? 0;
}

/** Polls `_active_tasks` until no compaction of `db` is left, drawing one bar per node. */
async function waitForCompaction(get: Get, db: string, options: CompactOptions): Promise<void> {
  const started = Date.now();
  const bars = new MultiBar(
    {
      format: '{node} {bar} {percentage}% | {phase} | {done}/{total} changes',
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  const byNode = new Map<string, SingleBar>();
  try {
    for (;;) {
      const tasks = await compactionTasks(get, db);
      for (const task of tasks) {
        const node = task.node ?? 'node';
        let bar = byNode.get(node);
        if (bar === undefined) {
          bar = bars.create(PERCENT, 0, { node, phase: '', done: 0, total: 0 });
          byNode.set(node, bar);
        }
        bar.update(Math.round(task.progress ?? 0), {
          node,
          phase: task.phase ?? '',
          done: task.changes_done ?? 0,
          total: task.total_changes ?? 0,
        });
      }
      const elapsed = Date.now() - started;
      if (tasks.length === 0 && (byNode.size > 0 || elapsed >= START_GRACE_MS)) break;
      if (elapsed >= options.timeoutMs) {
        throw new Error(`compaction of ${db} still running after ${options.timeoutMs} ms`);
      }
      await new Promise((resolve) => setTimeout(resolve, options.pollMs));
    }
    for (const bar of byNode.values()) bar.update(PERCENT);
  } finally {
    bars.stop();
  }
}

async function compactionTasks(get: Get, db: string): Promise<CompactionTask[]> {
  const reply = await get<CompactionTask[]>('/_active_tasks');
  if (reply.status !== 200 || !Array.isArray(reply.body)) {
    throw new Error(`GET /_active_tasks returned ${reply.status}: ${reply.text.trim()}`);
  }
  return reply.body.filter((task) => task.type === 'database_compaction' && task.database === db);
}

function parseJson(text: string): never | null {
  try {
    return JSON.parse(text) as never;
  } catch {
    return null;
  }
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
const BYTES_PER_UNIT = 1024;

/** Formats a byte count with a binary unit, e.g. `1.5 MiB`. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= BYTES_PER_UNIT && unit < BYTE_UNITS.length - 1) {
    value /= BYTES_PER_UNIT;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}
