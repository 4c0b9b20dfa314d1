/**
 * The cluster benchmark's HTTP load generator, on undici connection pools with keep-alive
 * (one pool per origin, one request per connection at a time).
 *
 * Two modes:
 * - closed loop: `clients` loops, each sending its next request once the response to its last
 *   one ended. Latency runs from the send to the end of the response body.
 * - open loop: requests are due at a fixed rate whatever the answers, with at most `clients`
 *   in flight; latency runs from the time a request was due, so a server that falls behind
 *   is charged for the queue it causes (no coordinated omission).
 *
 * Every run is bounded by a request count and a time: no request starts after either bound,
 * requests in flight end within the request timeout, and the pools are destroyed after that.
 * The latency histogram holds successful requests only. Every response or network error is
 * counted in a status census keyed by the status code (`"201"`) or the error code
 * (`"error:ECONNREFUSED"`). Progress goes to stderr.
 *
 * What this does not do: retry (a failed request is counted and the client moves on), or
 * decide what success means beyond the one status code the operation names.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import { assert } from '../../src/util/assert.js';
import { progress } from '../report.js';
import { LatencyHistogram, type LatencySummary } from './histogram.js';
import { within } from './timeout.js';

const MS_PER_SECOND = 1000;
const PROGRESS_INTERVAL_MS = 2000;
/** Idle time after which a pooled connection is closed; longer than any pause in a run. */
const KEEP_ALIVE_TIMEOUT_MS = 60_000;
/** An open-loop request sent this much after it was due counts as late. */
const LATE_AFTER_MS = 10;
/** The open loop's longest sleep while waiting for the next request to fall due. */
const OPEN_LOOP_MAX_SLEEP_MS = 5;

export type HttpMethod = 'GET' | 'PUT' | 'POST';

export interface HttpRequestSpec {
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  readonly method: HttpMethod;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Buffer;
}

/** The requests of a run and the rule that judges their responses. */
export interface Operation {
  /** Builds request `index` of the run, sent by `client` (its in-flight slot in open loop). */
  build(index: number, client: number): HttpRequestSpec;
  /** The one status code of a successful response, e.g. 201 for a Divan write. */
  readonly successStatus: number;
  /** Items one successful request carries (documents of a batch); 1 when absent. */
  readonly itemsPerRequest?: number;
  /**
   * Counts the items that succeeded, from the body of a response with the success status.
   * When absent, bodies are discarded unread.
   */
  countItems?(body: string): number;
}

/** One finished request, for scenarios that watch the run (failover, catch-up). */
export interface ResponseEvent {
  readonly index: number;
  readonly client: number;
  readonly origin: string;
  /** `performance.now()` when the request was sent, and when its body ended or it failed. */
  readonly sentAtMs: number;
  readonly doneAtMs: number;
  readonly status: number | null;
  readonly ok: boolean;
  readonly items: number;
}

export type LoadMode = 'closed' | 'open';

export interface LoadOptions {
  /** Name of the run in progress lines. */
  readonly label: string;
  readonly mode: LoadMode;
  /** Closed loop: concurrent clients. Open loop: the most requests in flight. */
  readonly clients: number;
  /** Open loop only: requests per second. */
  readonly ratePerSecond?: number;
  readonly maxRequests: number;
  readonly maxSeconds: number;
  /** Bound on waiting for response headers and for the body, each. */
  readonly requestTimeoutMs: number;
  /** Ends the run early: no request starts after it aborts. */
  readonly signal?: AbortSignal;
  readonly onResponse?: (event: ResponseEvent) => void;
}

export type StopReason = 'requests' | 'time' | 'signal';

export interface LoadResult {
  readonly label: string;
  readonly mode: LoadMode;
  readonly clients: number;
  readonly ratePerSecond: number | null;
  /** Requests that finished, failed ones included. */
  readonly requests: number;
  readonly successfulRequests: number;
  /** Successful items: documents of successful requests. */
  readonly items: number;
  readonly elapsedSeconds: number;
  readonly requestsPerSecond: number;
  readonly itemsPerSecond: number;
  /** Latency of successful requests. */
  readonly latency: LatencySummary;
  /** Finished requests by status code, or by `error:<code>` for network errors. */
  readonly census: Readonly<Record<string, number>>;
  readonly stoppedBy: StopReason;
  /** Open loop: requests sent more than `LATE_AFTER_MS` after they were due. */
  readonly lateRequests: number;
}

/** The mutable state of one run. */
class Run {
  readonly histogram = new LatencyHistogram();
  readonly census = new Map<string, number>();
  readonly pools = new Map<string, Pool>();
  readonly startMs = performance.now();
  readonly deadlineMs: number;
  requests = 0;
  successfulRequests = 0;
  items = 0;
  lateRequests = 0;
  stoppedBy: StopReason | null = null;

  constructor(
    readonly operation: Operation,
    readonly options: LoadOptions,
  ) {
    this.deadlineMs = this.startMs + options.maxSeconds * MS_PER_SECOND;
  }

  /** Returns whether a new request may start now, and records the reason when not. */
  mayStart(index: number): boolean {
    if (this.stoppedBy !== null) return false;
    if (this.options.signal?.aborted === true) this.stoppedBy = 'signal';
    else if (index >= this.options.maxRequests) this.stoppedBy = 'requests';
    else if (performance.now() >= this.deadlineMs) this.stoppedBy = 'time';
    return this.stoppedBy === null;
  }

  pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.options.clients,
        pipelining: 1,
        keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
        headersTimeout: this.options.requestTimeoutMs,
        bodyTimeout: this.options.requestTimeoutMs,
        connect: { timeout: this.options.requestTimeoutMs },
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** Sends request `index`; latency counts from `dueAtMs` (the send time in closed loop). */
  async send(index: number, client: number, dueAtMs: number): Promise<void> {
    const spec = this.operation.build(index, client);
    const sentAtMs = performance.now();
    let status: number | null = null;
    let items = 0;
    let key: string;
    try {
      const response = await this.pool(spec.origin).request({
        path: spec.path,
        method: spec.method,
        headers: spec.headers,
        body: spec.body,
      });
      status = response.statusCode;
      key = String(status);
      if (status === this.operation.successStatus && this.operation.countItems !== undefined) {
        items = this.operation.countItems(await response.body.text());
      } else {
        await response.body.dump();
        if (status === this.operation.successStatus) items = this.operation.itemsPerRequest ?? 1;
      }
    } catch (error) {
      key = `error:${errorCode(error)}`;
    }
    const doneAtMs = performance.now();
    const ok = status === this.operation.successStatus && items > 0;
    this.requests += 1;
    this.census.set(key, (this.census.get(key) ?? 0) + 1);
    if (ok) {
      this.successfulRequests += 1;
      this.items += items;
      this.histogram.recordMs(doneAtMs - dueAtMs);
    }
    this.options.onResponse?.({
      index,
      client,
      origin: spec.origin,
      sentAtMs,
      doneAtMs,
      status,
      ok,
      items,
    });
  }

  result(endMs: number): LoadResult {
    const elapsedSeconds = (endMs - this.startMs) / MS_PER_SECOND;
    const latency = this.histogram.summary();
    this.histogram.destroy();
    return {
      label: this.options.label,
      mode: this.options.mode,
      clients: this.options.clients,
      ratePerSecond: this.options.ratePerSecond ?? null,
      requests: this.requests,
      successfulRequests: this.successfulRequests,
      items: this.items,
      elapsedSeconds,
      requestsPerSecond: this.requests / elapsedSeconds,
      itemsPerSecond: this.items / elapsedSeconds,
      latency,
      census: Object.fromEntries([...this.census].sort(([a], [b]) => a.localeCompare(b))),
      stoppedBy: this.stoppedBy ?? 'requests',
      lateRequests: this.lateRequests,
    };
  }
}

function errorCode(error: unknown): string {
  if (typeof error === 'object' && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const name = (error as { name?: unknown }).name;
    if (typeof name === 'string') return name;
  }
  return 'unknown';
}

/** Runs one bounded load against the operation and returns what it measured. */
export async function runLoad(operation: Operation, options: LoadOptions): Promise<LoadResult> {
  assert(Number.isSafeInteger(options.clients), 'clients must be an integer');
  assert(options.clients > 0, 'clients must be > 0');
  assert(options.maxRequests > 0, 'a run needs a request bound');
  assert(options.maxSeconds > 0, 'a run needs a time bound');
  assert(
    options.mode === 'closed' || (options.ratePerSecond ?? 0) > 0,
    'an open-loop run needs a rate',
  );
  const run = new Run(operation, options);
  const reporter = setInterval(() => reportProgress(run), PROGRESS_INTERVAL_MS);
  let endMs: number;
  try {
    const work = options.mode === 'closed' ? closedLoop(run) : openLoop(run);
    // Requests in flight at the deadline get their timeout, and then some slack, to finish.
    const hardLimitMs = options.maxSeconds * MS_PER_SECOND + 2 * options.requestTimeoutMs + 1000;
    const finished = await within(
      work.then(() => true),
      hardLimitMs,
      false,
    );
    endMs = performance.now();
    if (!finished) progress(`${options.label}: requests still in flight at the hard limit`);
  } finally {
    clearInterval(reporter);
    await Promise.all([...run.pools.values()].map((pool) => pool.destroy()));
  }
  const result = run.result(endMs);
  progress(`${options.label}: done, ${describe(result)}`);
  return result;
}

async function closedLoop(run: Run): Promise<void> {
  let next = 0;
  const client = async (id: number) => {
    while (run.mayStart(next)) {
      const index = next++;
      await run.send(index, id, performance.now());
    }
  };
  await Promise.all(Array.from({ length: run.options.clients }, (_, id) => client(id)));
}

async function openLoop(run: Run): Promise<void> {
  const intervalMs = MS_PER_SECOND / run.options.ratePerSecond!;
  const inFlight = new Set<Promise<void>>();
  const freeSlots = Array.from({ length: run.options.clients }, (_, slot) => slot).reverse();
  let index = 0;
  while (run.mayStart(index)) {
    const dueAtMs = run.startMs + index * intervalMs;
    const now = performance.now();
    if (dueAtMs > now) {
      await sleep(Math.min(OPEN_LOOP_MAX_SLEEP_MS, dueAtMs - now));
      continue;
    }
    if (freeSlots.length === 0) {
      await Promise.race(inFlight);
      continue;
    }
    if (now - dueAtMs > LATE_AFTER_MS) run.lateRequests += 1;
    const slot = freeSlots.pop()!;
    const request: Promise<void> = run.send(index, slot, dueAtMs).finally(() => {
      inFlight.delete(request);
      freeSlots.push(slot);
    });
    inFlight.add(request);
    index += 1;
  }
  await Promise.all(inFlight);
}

function reportProgress(run: Run): void {
  const seconds = (performance.now() - run.startMs) / MS_PER_SECOND;
  const failed = run.requests - run.successfulRequests;
  progress(
    `${run.options.label}: ${run.requests} requests in ${seconds.toFixed(1)} s, ` +
      `${Math.round(run.items / seconds)} items/s, ${failed} failed`,
  );
}

/** Describes a finished run in one line, for progress output. */
export function describe(result: LoadResult): string {
  const census = Object.entries(result.census)
    .map(([key, count]) => `${key}=${count}`)
    .join(' ');
  return (
    `${result.items} items in ${result.elapsedSeconds.toFixed(1)} s ` +
    `(${Math.round(result.itemsPerSecond)}/s), p50 ${result.latency.p50Ms.toFixed(2)} ms, ` +
    `p99 ${result.latency.p99Ms.toFixed(2)} ms, statuses ${census}, stopped by ${result.stoppedBy}`
  );
}
