/**
 * Snapshots by shipping the database file. A follower that needs entries its leader has
 * discarded receives the leader's whole file up to a durable header: that prefix of an
 * append-only file is itself a complete database file whose newest header records the applied
 * index, term, membership and hash chain, every tree and the request-id table.
 *
 * - `pinDurable` (leader) takes the newest durable header's size and a descriptor of the file
 *   that header lives in (`DatabaseFile.durableSource`). The bytes before it never change,
 *   and the descriptor keeps them readable even after a compaction swap renames the
 *   compacted file over the path.
 * - `installSnapshot` (follower) first recovers what an interrupted compaction of the live file
 *   left (compaction.ts), then refuses a snapshot older than the live file's applied index
 *   (`StaleSnapshotError`): the live file is the follower's own record of what it applied,
 *   and installing an older state would move the follower backwards. Otherwise it opens the
 *   received file (which verifies its headers), gives it the follower's own term and vote,
 *   restarts its log at the snapshot point, syncs it, and renames it over the live file. A
 *   crash before the rename leaves the old file; after it, the new one.
 */
import { dirname } from 'node:path';
import type { HardState, SnapshotMeta } from '../raft/types.js';
import { BlockFile } from '../storage/block-file.js';
import type { FileSystem } from '../storage/io.js';
import { nodeFileSystem } from '../storage/io.js';
import { silentLogger } from '../util/log.js';
import { recoverCompactionFiles } from './compaction.js';
import { DatabaseFile, type OpenOptions } from './database-file.js';
import { decodeHeader } from './header.js';

/** A pinned durable prefix of a database file. */
export interface DurablePin {
  readonly size: number;
  readonly meta: SnapshotMeta;
  /** Reads `length` bytes at `offset` (within `size`). */
  read(offset: number, length: number): Buffer;
  release(): Promise<void>;
}

/** Pins the newest durable state of `file` for shipping. */
export function pinDurable(file: DatabaseFile): DurablePin {
  const { size, meta, descriptor } = file.durableSource();
  if (descriptor.sizeBytes < size) {
    descriptor.release();
    throw new Error(`database file ${file.path} is shorter than its durable header`);
  }
  let released = false;
  return {
    size,
    meta,
    read(offset: number, length: number): Buffer {
      if (released) throw new Error(`snapshot pin of ${file.path} was released`);
      const end = Math.min(size, offset + length);
      return descriptor.read(offset, Math.max(0, end - offset));
    },
    async release(): Promise<void> {
      if (released) return;
      released = true;
      descriptor.release();
    },
  };
}

/** A snapshot older than what the follower has applied; installing it would lose entries. */
export class StaleSnapshotError extends Error {
  override readonly name = 'StaleSnapshotError';

  constructor(
    readonly snapshotIndex: number,
    readonly appliedIndex: number,
  ) {
    super(
      `snapshot at applied index ${snapshotIndex} is older than the applied index ${appliedIndex} of the live file`,
    );
  }
}

/** Returns the applied index of the live file's newest durable header, or 0 without a file. */
async function liveAppliedIndex(livePath: string, fileSystem: FileSystem): Promise<number> {
  if (!(await fileSystem.exists(livePath))) return 0;
  const live = await BlockFile.open(livePath, { fileSystem, readOnly: true });
  try {
    return decodeHeader(live.header).fields.applied.index;
  } finally {
    await live.close();
  }
}

export interface InstallOptions extends OpenOptions {
  /** The follower's own hard state: a snapshot never changes its term or vote. */
  readonly hardState: HardState;
  readonly fileSystem?: FileSystem;
}

/**
 * Installs a received file as the live database file and returns it opened. The received
 * file's applied point becomes the log's discard point; its retained entries are dropped.
 * Throws `StaleSnapshotError`, leaving both files as they are, when the received file is
 * older than the live one. The live file must be closed.
 */
export async function installSnapshot(
  receivedPath: string,
  livePath: string,
  options: InstallOptions,
): Promise<DatabaseFile> {
  const fileSystem = options.fileSystem ?? nodeFileSystem;
  // A crash during a compaction's swap can leave the newer file aside. Promote it first, so
  // the snapshot is compared with it and it cannot replace the installed file at next open.
  await recoverCompactionFiles(livePath, fileSystem, options.logger ?? silentLogger);
  const liveApplied = await liveAppliedIndex(livePath, fileSystem);
  const received = await DatabaseFile.open(receivedPath, options);
  try {
    const applied = received.applied.index;
    if (applied < liveApplied) throw new StaleSnapshotError(applied, liveApplied);
    const { durable } = received.stage({
      hardState: options.hardState,
      truncateAfter: applied,
      ...(applied > received.discarded.index ? { discardUpTo: applied } : {}),
    });
    await durable;
  } finally {
    await received.close();
  }
  await fileSystem.rename(receivedPath, livePath);
  await fileSystem.syncDirectory(dirname(livePath));
  return DatabaseFile.open(livePath, options);
}
