/**
 * The worker thread of a compaction: each round copies one durable state of the source file
 * into the target file (`copyAll` in the first round, `copyDelta` after), commits the target
 * and reports the target's header back. The main thread keeps serving meanwhile; it runs the
 * last, small catch-up itself and swaps the files (compaction.ts, database-file.ts).
 *
 * The worker reads the source through a read-only handle of its own and writes the target
 * with the real file system and the two-fsync discipline: the target is scratch until the
 * main thread opens it for the swap, and any target left by a crash is deleted when the
 * database opens. The target is committed every `CHECKPOINT_BYTES` so that appended bytes
 * never pile up in memory; those checkpoint headers repeat the previous round's header.
 *
 * `delayPerDocumentMs` (tests only) blocks this thread for that long per copied document, and
 * copies in small batches, so a test can watch a compaction run and write meanwhile.
 */
import { parentPort } from 'node:worker_threads';
import { BlockFile } from '../storage/block-file.js';
import { NodeCache } from '../storage/node-cache.js';
import {
  COPY_BATCH_ENTRIES,
  type CopyObserver,
  copyAll,
  copyDelta,
  type FileState,
} from './compaction-copy.js';
import { decodeHeader, encodeHeader, TREE_NAMES, type TreeRoots } from './header.js';
import { openTrees, rootsOf, type TreeOptions } from './trees.js';

/** Bytes appended to the target between checkpoint commits. */
const CHECKPOINT_BYTES = 16 * 1024 * 1024;
/** Node cache of the worker: it reads each source node about once. */
const WORKER_CACHE_BYTES = 32 * 1024 * 1024;
/** Batch size when a test slows the copy down, so progress moves in small steps. */
const SLOW_BATCH_ENTRIES = 8;
/** Progress messages are sent at most this often, except when a phase starts. */
const PROGRESS_INTERVAL_MS = 100;

/** A round the main thread asks for. */
export interface RoundRequest {
  readonly type: 'round';
  readonly sourcePath: string;
  readonly targetPath: string;
  /** The source header payload of the state to copy. */
  readonly to: Uint8Array;
  /** The source header payload of the state the target holds; null in the first round. */
  readonly from: Uint8Array | null;
  readonly nodeSizeBytes?: number;
  readonly delayPerDocumentMs: number;
}

export type WorkerMessage =
  | {
      readonly type: 'progress';
      readonly phase: string;
      readonly done: number;
      readonly total: number;
    }
  | { readonly type: 'done'; readonly header: Uint8Array }
  | { readonly type: 'error'; readonly message: string; readonly stack: string | undefined };

const sleeper = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

/** Blocks this worker thread for `ms` milliseconds. */
function pause(ms: number): void {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

function progressObserver(delayPerDocumentMs: number): CopyObserver {
  let phase = '';
  let done = 0;
  let total = 0;
  let sentAt = 0;
  const send = (force: boolean) => {
    const now = Date.now();
    if (!force && now - sentAt < PROGRESS_INTERVAL_MS) return;
    sentAt = now;
    post({ type: 'progress', phase, done, total });
  };
  return {
    phase(name, count) {
      phase = name;
      done = 0;
      total = count;
      send(true);
    },
    advance(count) {
      done += count;
      send(delayPerDocumentMs > 0);
      pause(count * delayPerDocumentMs);
    },
  };
}

function sourceState(file: BlockFile, header: Uint8Array, options: TreeOptions): FileState {
  const decoded = decodeHeader(header);
  return { file, fields: decoded.fields, trees: openTrees(file, decoded.roots, options) };
}

async function openTarget(request: RoundRequest, to: FileState): Promise<BlockFile> {
  const options = { discipline: 'two-fsync' as const };
  if (request.from !== null) return BlockFile.open(request.targetPath, options);
  const emptyRoots = Object.fromEntries(TREE_NAMES.map((name) => [name, null])) as TreeRoots;
  const header = encodeHeader({ fields: to.fields, roots: emptyRoots });
  return BlockFile.create(request.targetPath, header, options);
}

async function runRound(request: RoundRequest): Promise<Uint8Array> {
  const treeOptions: TreeOptions = {
    cache: new NodeCache(WORKER_CACHE_BYTES),
    nodeSizeBytes: request.nodeSizeBytes,
  };
  const source = await BlockFile.open(request.sourcePath, { readOnly: true });
  try {
    const to = sourceState(source, request.to, treeOptions);
    const target = await openTarget(request, to);
    try {
      const held = decodeHeader(target.header);
      const targetState = {
        file: target,
        trees: openTrees(target, held.roots, treeOptions),
        fields: held.fields,
      };
      const observer = progressObserver(request.delayPerDocumentMs);
      const batchEntries = request.delayPerDocumentMs > 0 ? SLOW_BATCH_ENTRIES : COPY_BATCH_ENTRIES;
      const copy =
        request.from === null
          ? copyAll(to, targetState, observer, batchEntries)
          : copyDelta(
              sourceState(source, request.from, treeOptions),
              to,
              targetState,
              observer,
              batchEntries,
            );
      let checkpointAt = target.end;
      let step = copy.next();
      while (step.done !== true) {
        if (target.end - checkpointAt >= CHECKPOINT_BYTES) {
          await target.commit(target.header);
          checkpointAt = target.end;
        }
        step = copy.next();
      }
      const header = encodeHeader({ fields: step.value.fields, roots: rootsOf(step.value.trees) });
      await target.commit(header);
      return header;
    } finally {
      await target.close();
    }
  } finally {
    await source.close();
  }
}

parentPort?.on('message', (request: RoundRequest) => {
  runRound(request).then(
    (header) => post({ type: 'done', header }),
    (error: unknown) => {
      const failure = error instanceof Error ? error : new Error(String(error));
      post({ type: 'error', message: failure.message, stack: failure.stack });
    },
  );
});
