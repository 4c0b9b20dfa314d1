/**
 * Snapshots by shipping the database file. A follower that needs entries its leader has
 * discarded receives the leader's whole file up to a durable header: that prefix of an
 * append-only file is itself a complete database file whose newest header records the applied
 * index, term, membership and hash chain, every tree and the request-id table.
 *
 * - `pinDurable` (leader) opens a read-only descriptor on the file and fixes the size to the
 *   newest durable header. The bytes before it never change, and the descriptor keeps them
 *   readable even if a compaction swap later unlinks the path.
 * - `installSnapshot` (follower) opens the received file (which verifies its headers), gives it
 *   the follower's own term and vote, restarts its log at the snapshot point, syncs it, and
 *   renames it over the live file. A crash before the rename leaves the old file; after it, the
 *   new one.
 */
import { close, fstatSync, openSync, readSync } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import type { HardState, SnapshotMeta } from '../raft/types.js';
import type { FileSystem } from '../storage/io.js';
import { nodeFileSystem } from '../storage/io.js';
import { DatabaseFile, type OpenOptions } from './database-file.js';

const closeAsync = promisify(close);

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
  const { size, meta } = file.durablePoint();
  const fd = openSync(file.path, 'r');
  if (fstatSync(fd).size < size) {
    void closeAsync(fd);
    throw new Error(`database file ${file.path} is shorter than its durable header`);
  }
  let released = false;
  return {
    size,
    meta,
    read(offset: number, length: number): Buffer {
      if (released) throw new Error(`snapshot pin of ${file.path} was released`);
      const end = Math.min(size, offset + length);
      const buffer = Buffer.allocUnsafe(Math.max(0, end - offset));
      let done = 0;
      while (done < buffer.length) {
        const read = readSync(fd, buffer, done, buffer.length - done, offset + done);
        if (read === 0) throw new Error(`unexpected end of ${file.path} at ${offset + done}`);
        done += read;
      }
      return buffer;
    },
    async release(): Promise<void> {
      if (released) return;
      released = true;
      await closeAsync(fd);
    },
  };
}

export interface InstallOptions extends OpenOptions {
  /** The follower's own hard state: a snapshot never changes its term or vote. */
  readonly hardState: HardState;
  readonly fileSystem?: FileSystem;
}

/**
 * Installs a received file as the live database file and returns it opened. The received
 * file's applied point becomes the log's discard point; its retained entries are dropped.
 */
export async function installSnapshot(
  receivedPath: string,
  livePath: string,
  options: InstallOptions,
): Promise<DatabaseFile> {
  const fileSystem = options.fileSystem ?? nodeFileSystem;
  const received = await DatabaseFile.open(receivedPath, options);
  try {
    const applied = received.applied.index;
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
