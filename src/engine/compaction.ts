/**
 * Online compaction of a database file: the rounds, the worker thread that runs them, and
 * recovery of the files a crash leaves behind. The swap itself belongs to `DatabaseFile`,
 * which owns the state it replaces (database-file.ts, `CompactionHost.finish`).
 *
 * A compaction of `<path>`:
 * 1. The worker copies the newest durable state of `<path>` into `<path>.compact.data`
 *    (compaction-copy.ts `copyAll`) while the main thread keeps serving and committing.
 * 2. While the writes made meanwhile are more than `finalCatchUpUnits` (changed documents and
 *    log entries), the worker copies the difference between the state it copied and the newest
 *    durable one (`copyDelta`), up to `maxRounds` rounds.
 * 3. The host opens the target, copies the last difference up to its in-memory state in one
 *    synchronous step, commits it, and swaps: it renames `.compact.data` to `.compact`,
 *    syncs the directory, renames `.compact` over `<path>` and syncs the directory again.
 *
 * Files after a crash, handled by `recoverCompactionFiles` when the database opens:
 * - `<path>.compact.data` is scratch (it may hold a partial copy): it is deleted;
 * - `<path>.compact` is complete (it is renamed only after its final commit was durable) and
 *   at least as new as `<path>`: it is renamed over `<path>`, as CouchDB recovers a
 *   `.compact` file it finds at open.
 * A crash while the worker creates `<path>.compact.data` can also leave the block file's
 * temporary `<path>.compact.data.<random>.creating`. The next compaction of the database
 * deletes it, so that opening a database never lists its directory.
 *
 * `DIVAN_TEST_COMPACTION_DELAY_MS` (tests only) makes the worker wait that many milliseconds
 * per copied document, so a compaction can be watched while it runs.
 */
import { basename, dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FileSystem } from '../storage/io.js';
import { assert } from '../util/assert.js';
import type { Logger } from '../util/log.js';
import type { RoundRequest, WorkerMessage } from './compaction-worker.js';
import { decodeHeader } from './header.js';

/** Environment variable that slows compaction down for tests, in ms per copied document. */
export const COMPACTION_DELAY_ENV = 'DIVAN_TEST_COMPACTION_DELAY_MS';
export const COMPACT_DATA_SUFFIX = '.compact.data';
export const COMPACT_SUFFIX = '.compact';
/** A catch-up this small is done by the main thread in one synchronous step. */
export const DEFAULT_FINAL_CATCH_UP_UNITS = 1_000;
/** Worker rounds before the main thread does the rest however large it is. */
export const DEFAULT_MAX_ROUNDS = 10;
const MS_PER_SECOND = 1000;
/** Suffix of the temporary file `BlockFile.create` writes before renaming it into place. */
const CREATING_SUFFIX = '.creating';

/** `document_copy`, `docid_copy`, `catch_up` and the other copy phases, then `swap`. */
export type CompactionPhase =
  | 'starting'
  | 'log'
  | 'document_copy'
  | 'docid_copy'
  | 'local_copy'
  | 'catch_up'
  | 'swap';

export interface CompactionProgress {
  readonly phase: CompactionPhase;
  /** 1 for the first copy, then one more per catch-up round. */
  readonly round: number;
  /** Units (documents or log entries) of the phase done, and its total. */
  readonly changesDone: number;
  readonly totalChanges: number;
  /** Process-unique number of this compaction. */
  readonly taskId: number;
  /** Unix milliseconds. */
  readonly startedAt: number;
  readonly updatedAt: number;
}

export interface CompactionResult {
  /** File size before and after, in bytes. */
  readonly sizeBefore: number;
  readonly sizeAfter: number;
  readonly rounds: number;
}

export interface CompactOptions {
  /** Tests only: ms the worker waits per copied document; the environment's when absent. */
  readonly delayPerDocumentMs?: number;
  readonly finalCatchUpUnits?: number;
  readonly maxRounds?: number;
}

/** What a compaction needs from the database file it compacts. */
export interface CompactionHost {
  readonly path: string;
  readonly fileSystem: FileSystem;
  readonly nodeSizeBytes: number | undefined;
  readonly logger: Logger;
  /** The file's size now, in bytes. */
  sizeBytes(): number;
  /** The payload of the newest durable header. */
  durableHeader(): Uint8Array;
  /** Changed documents and log entries of the in-memory state since a header's state. */
  backlogSince(header: Uint8Array): number;
  /**
   * Copies the rest from `copied` (the state the target holds) synchronously, switches to the
   * target and completes the swap; resolves with the new file's size.
   */
  finish(targetPath: string, copied: Uint8Array): Promise<number>;
}

let nextTaskId = 1;

function delayFromEnv(): number {
  const text = process.env[COMPACTION_DELAY_ENV];
  if (text === undefined || text === '') return 0;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) {
    throw new Error(`${COMPACTION_DELAY_ENV} must be a non-negative number of ms, not "${text}"`);
  }
  return value;
}

/** Deletes a partial copy and promotes a complete one; see the file header. */
export async function recoverCompactionFiles(
  path: string,
  fileSystem: FileSystem,
  logger: Logger,
): Promise<void> {
  const scratch = `${path}${COMPACT_DATA_SUFFIX}`;
  const complete = `${path}${COMPACT_SUFFIX}`;
  if (await fileSystem.exists(scratch)) {
    await fileSystem.unlink(scratch);
    logger.info({ path: scratch }, 'removed the partial copy of an unfinished compaction');
  }
  if (await fileSystem.exists(complete)) {
    await fileSystem.rename(complete, path);
    await fileSystem.syncDirectory(dirname(path));
    logger.info({ path }, 'recovered the compacted file of a compaction interrupted at its swap');
  }
}

/** Deletes the temporary files that a crash during the creation of `scratch` left. */
async function removeCreationLeftovers(scratch: string, fileSystem: FileSystem, logger: Logger) {
  const directory = dirname(scratch);
  const prefix = `${basename(scratch)}.`;
  for (const name of await fileSystem.readdir(directory)) {
    if (!name.startsWith(prefix) || !name.endsWith(CREATING_SUFFIX)) continue;
    await fileSystem.unlink(join(directory, name));
    logger.info({ path: join(directory, name) }, 'removed a partly created compaction file');
  }
}

/** Runs one compaction: worker rounds, then the host's swap. */
export class Compactor {
  readonly #host: CompactionHost;
  readonly #delayMs: number;
  readonly #finalUnits: number;
  readonly #maxRounds: number;
  readonly #targetPath: string;
  #worker: Worker | null = null;
  #aborted = false;
  #progress: CompactionProgress;

  constructor(host: CompactionHost, options: CompactOptions = {}) {
    this.#host = host;
    this.#delayMs = options.delayPerDocumentMs ?? delayFromEnv();
    this.#finalUnits = options.finalCatchUpUnits ?? DEFAULT_FINAL_CATCH_UP_UNITS;
    this.#maxRounds = options.maxRounds ?? DEFAULT_MAX_ROUNDS;
    this.#targetPath = `${host.path}${COMPACT_DATA_SUFFIX}`;
    const now = Date.now();
    this.#progress = {
      phase: 'starting',
      round: 0,
      changesDone: 0,
      totalChanges: 0,
      taskId: nextTaskId++,
      startedAt: now,
      updatedAt: now,
    };
  }

  get progress(): CompactionProgress {
    return this.#progress;
  }

  /** Compacts; rejects when the worker fails or the compaction is aborted. */
  async run(): Promise<CompactionResult> {
    const sizeBefore = this.#host.sizeBytes();
    this.#host.logger.info({ path: this.#host.path, sizeBefore }, 'compaction started');
    try {
      await this.#host.fileSystem.remove(this.#targetPath);
      await removeCreationLeftovers(this.#targetPath, this.#host.fileSystem, this.#host.logger);
      let copied = this.#host.durableHeader();
      await this.#round(null, copied);
      while (!this.#aborted && this.#progress.round < this.#maxRounds) {
        if (this.#host.backlogSince(copied) <= this.#finalUnits) break;
        const next = this.#host.durableHeader();
        if (decodeHeader(next).fields.applied.index === decodeHeader(copied).fields.applied.index) {
          break;
        }
        await this.#round(copied, next);
        copied = next;
      }
      this.#checkAborted();
      this.#stopWorker();
      this.#update({ phase: 'swap', changesDone: 0, totalChanges: 0 });
      const sizeAfter = await this.#host.finish(this.#targetPath, copied);
      const result = { sizeBefore, sizeAfter, rounds: this.#progress.round };
      this.#host.logger.info({ path: this.#host.path, ...result }, 'compaction finished');
      return result;
    } catch (error) {
      this.#stopWorker();
      await this.#host.fileSystem.remove(this.#targetPath).catch(() => undefined);
      if (!this.#aborted) {
        this.#host.logger.error({ path: this.#host.path, err: error }, 'compaction failed');
      }
      throw error;
    }
  }

  /** Stops the worker; `run` then rejects and removes the partial copy. */
  abort(): void {
    this.#aborted = true;
    this.#stopWorker();
  }

  #checkAborted(): void {
    if (this.#aborted) throw new CompactionAbortedError(this.#host.path);
  }

  #update(change: Partial<CompactionProgress>): void {
    this.#progress = { ...this.#progress, ...change, updatedAt: Date.now() };
  }

  #startWorker(): Worker {
    if (this.#worker !== null) return this.#worker;
    const worker = new Worker(new URL('./compaction-worker.js', import.meta.url));
    worker.unref();
    this.#worker = worker;
    return worker;
  }

  #stopWorker(): void {
    const worker = this.#worker;
    this.#worker = null;
    if (worker !== null) void worker.terminate();
  }

  /** Runs one worker round; resolves once the worker committed the target. */
  #round(from: Uint8Array | null, to: Uint8Array): Promise<void> {
    this.#checkAborted();
    this.#update({ round: this.#progress.round + 1, phase: 'starting' });
    const worker = this.#startWorker();
    const request: RoundRequest = {
      type: 'round',
      sourcePath: this.#host.path,
      targetPath: this.#targetPath,
      to,
      from,
      nodeSizeBytes: this.#host.nodeSizeBytes,
      delayPerDocumentMs: this.#delayMs,
    };
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (message: WorkerMessage) => {
        if (message.type === 'progress') {
          this.#update({
            phase: message.phase as CompactionPhase,
            changesDone: message.done,
            totalChanges: message.total,
          });
          return;
        }
        cleanup();
        if (message.type === 'done') resolve();
        else reject(new Error(`compaction worker failed: ${message.message}\n${message.stack}`));
      };
      const onError = (error: Error) => {
        cleanup();
        reject(error);
      };
      const onExit = (code: number) => {
        cleanup();
        reject(
          this.#aborted
            ? new CompactionAbortedError(this.#host.path)
            : new Error(`compaction worker exited with ${code}`),
        );
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
      worker.postMessage(request);
    });
  }
}

/** The compaction stopped because its database file was closed. */
export class CompactionAbortedError extends Error {
  override readonly name = 'CompactionAbortedError';

  constructor(path: string) {
    super(`compaction of ${path} was aborted`);
  }
}

/** Unix seconds of a millisecond time, as `_active_tasks` reports times. */
export function unixSeconds(ms: number): number {
  assert(ms >= 0, 'a time is not negative');
  return Math.floor(ms / MS_PER_SECOND);
}
