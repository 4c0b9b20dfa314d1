/**
 * The append-only block file: checksummed records appended at the end, commits that write a
 * header at a block boundary, and recovery of the newest header that verifies.
 *
 * Appends are synchronous and go to an in-memory buffer. Sealed parts of the buffer (chunks)
 * are written at once, in file order. A one-fsync commit seals its last records and its
 * header as one chunk, so a small commit is one write. A small chunk is written synchronously,
 * because the page cache takes it in microseconds. A thread-pool job would cost two hand-offs
 * between threads, a quarter of the busy time in profiles of single writes. A large chunk is
 * written on the libuv thread pool, so it reaches the file while the caller goes on with
 * synchronous work. Commits run through one serial queue: a commit waits for the writes of
 * everything before its header, then fsyncs. Records appended while a commit is in flight
 * therefore belong to the next commit, and commits resolve in call order.
 * A record can be read as soon as `append` returns, from the buffer until its write completes.
 *
 * Commit disciplines (`CommitDiscipline`, recorded in each header):
 * - two-fsync: write the data, fsync, write the header, fsync.
 * - one-fsync: write the data and the header, fsync once. The header carries the CRC32C of
 *   every physical byte since the previous synced header, and open verifies it, so a header
 *   whose data did not all reach the disk is rejected.
 *
 * A one-fsync commit may skip its fsync (`sync: false`), for state that can be rebuilt, such
 * as a Raft group's applied state. Its header is written but not synced: it is durable only
 * once a later commit syncs, and until then `header` and `committedEnd` still describe the
 * last synced commit. Its region does not restart the checksum: the next header's region spans
 * every unsynced header back to the last synced one, so a reopen never trusts a header whose
 * earlier unsynced regions did not all reach the disk.
 *
 * Zeros are written ahead of the data (preallocation, `preallocateBytes`), so that most commits
 * write over space the file already has and their fsync has no file length to record. Opening
 * for writing cuts them with the rest of the tail; the backward scan for a header skips them.
 *
 * Invariants: bytes below `#end` are never rewritten, except that opening for writing cuts a
 * torn tail after the newest valid header. A failed write or fsync is fatal for the handle: it
 * is closed, never retried, and every later call raises the same `FileFailedError`.
 * This module does not cache records (the B+tree's node cache does) and gives no meaning to
 * header payloads.
 */

import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { assert } from '../util/assert.js';
import {
  BLOCK_SIZE,
  type CommitDiscipline,
  compactLogical,
  copyLogical,
  decodeHeader,
  decodeHeaderPrefix,
  encodeHeader,
  FORMAT_VERSION,
  HEADER_FIXED_BYTES,
  lengthChecksum,
  MARKER_DATA,
  MARKER_HEADER,
  MAX_RECORD_BYTES,
  physicalIndex,
  physicalLength,
  RECORD_PREFIX_BYTES,
} from './block-layout.js';
import {
  CorruptionError,
  FileClosedError,
  FileExistsError,
  FileFailedError,
  type StorageError,
  UnsupportedFormatError,
} from './errors.js';
import { type DbFile, type FileSystem, nodeFileSystem } from './io.js';
import { type NodeAllocator, NodeCache } from './node-cache.js';

export type { CommitDiscipline } from './block-layout.js';

/** Appended bytes are sealed into a chunk and written once this many are buffered. */
const FLUSH_THRESHOLD_BYTES = 1 << 20;
/** Chunks up to this size are written synchronously, larger ones on the thread pool. */
const SYNC_WRITE_MAX_BYTES = 256 << 10;
/** Capacity of each append buffer; a larger record gets a buffer of its own size. */
const APPEND_BUFFER_BYTES = 2 << 20;
/**
 * Written append buffers kept for reuse. A fresh buffer costs a page fault per 4 KiB on its
 * first fill, which profiles of random inserts showed in every append.
 */
const SPARE_APPEND_BUFFERS = 2;
/** Payload bytes the first read of a record covers unless the caller expects another size. */
const DEFAULT_EXPECTED_BYTES = 4096;
/** Initial size of the buffer that reads go through. */
const READ_BUFFER_BYTES = 8192;
/** Bytes read at a time while verifying a header's region checksum. */
const REGION_READ_BYTES = 1 << 20;
/**
 * Zeros written ahead of the data at a time, once fewer than half as many are left. The next
 * fsync makes them durable with the commit it serves.
 */
export const DEFAULT_PREALLOCATE_BYTES = 256 << 10;
/** Default commit discipline; docs/file-format.md gives the reason, docs/benchmarks.md the figures. */
export const DEFAULT_DISCIPLINE: CommitDiscipline = 'one-fsync';

export interface BlockFileOptions {
  fileSystem?: FileSystem;
  /** Discipline of the commits this handle writes; each header records its own. */
  discipline?: CommitDiscipline;
  /** Open without the right to append; the torn tail, if any, is left in place. */
  readOnly?: boolean;
  /** Zeros to write ahead of the data at a time; 0 turns preallocation off. */
  preallocateBytes?: number;
}

/** Counters of one handle since it was opened. */
export interface BlockFileStats {
  recordsAppended: number;
  /** Physical bytes handed to the file system, padding and headers included. */
  bytesWritten: number;
  /** Zero bytes written ahead of the data (preallocation), not counted in `bytesWritten`. */
  bytesPreallocated: number;
  fsyncs: number;
  commits: number;
  /** Commits that skipped their fsync (`sync: false`); also counted in `commits`. */
  unsyncedCommits: number;
  recordsRead: number;
}

/** Options of one `commit`. */
export interface CommitOptions {
  /**
   * False to write the header without an fsync (one-fsync only; a two-fsync handle always
   * syncs). The commit then resolves once its bytes are written, not once they are durable.
   */
  readonly sync?: boolean;
}

/** A buffer that appends fill, and the count of its chunks not yet written and drained. */
interface AppendBuffer {
  readonly bytes: Buffer;
  unwrittenChunks: number;
}

interface Chunk {
  position: number;
  bytes: Buffer;
  owner: AppendBuffer;
  /** The write of the chunk once started. */
  write: Promise<void> | undefined;
  /** A two-fsync header waits for the fsync of the data before it, and later chunks wait too. */
  heldUntilSync: boolean;
  done: boolean;
}

interface CommittedHeader {
  position: number;
  end: number;
  generation: number;
  payload: Uint8Array;
}

let nextFileId = 1;

const RESOLVED: Promise<void> = Promise.resolve();

export class BlockFile {
  /** Process-unique number of this handle, the node cache's key for its file. */
  readonly id = nextFileId++;
  readonly #file: DbFile;
  readonly #discipline: CommitDiscipline;
  readonly #readOnly: boolean;
  /** Physical end of every appended byte, buffered ones included. */
  #end: number;
  /** The file contains every byte below this offset. */
  #writtenEnd: number;
  /** The file's length as this handle made it: the data's end, or the end of the zeros after it. */
  #allocatedEnd: number;
  #preallocateBytes: number;
  /**
   * Sealed chunks from the first one whose write has not completed, in file order. Writes
   * start in file order, so none starts after a chunk held until a sync. Keeping the file
   * append-only in this way is what the power-loss layers model.
   */
  readonly #chunks: Chunk[] = [];
  /** Index in `#chunks` of the first chunk whose write has not started. */
  #unstarted = 0;
  /** Writes and fsyncs started and not yet settled; the descriptor closes only without any. */
  readonly #inFlight = new Set<Promise<void>>();
  #appendBuffer: AppendBuffer = {
    bytes: Buffer.allocUnsafeSlow(APPEND_BUFFER_BYTES),
    unwrittenChunks: 0,
  };
  /** `#appendBuffer.bytes`, the buffer appends fill. */
  #buffer: Buffer = this.#appendBuffer.bytes;
  /** Full append buffers whose chunks are all written, ready for reuse. */
  readonly #spareBuffers: AppendBuffer[] = [];
  #bufferPosition: number;
  #bufferUsed = 0;
  #bufferSealed = 0;
  /** End of the buffer's bytes counted in `#regionChecksum`. It is never below `#bufferSealed`. */
  #bufferSummed = 0;
  /** Start of the bytes the next header's region checksum covers, and their CRC so far. */
  #regionStart: number;
  #regionChecksum = 0;
  #generation: number;
  #committed: CommittedHeader;
  #queue: Promise<void> = Promise.resolve();
  #failure: StorageError | undefined;
  #closed = false;
  #scratch: Buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  readonly #lengthScratch = Buffer.alloc(4);
  readonly stats: BlockFileStats = {
    recordsAppended: 0,
    bytesWritten: 0,
    bytesPreallocated: 0,
    fsyncs: 0,
    commits: 0,
    unsyncedCommits: 0,
    recordsRead: 0,
  };

  private constructor(
    readonly path: string,
    file: DbFile,
    committed: CommittedHeader,
    options: BlockFileOptions,
  ) {
    this.#file = file;
    this.#discipline = options.discipline ?? DEFAULT_DISCIPLINE;
    this.#readOnly = options.readOnly === true;
    this.#committed = committed;
    this.#generation = committed.generation;
    this.#end = committed.end;
    this.#writtenEnd = committed.end;
    this.#allocatedEnd = committed.end;
    this.#preallocateBytes = this.#readOnly
      ? 0
      : (options.preallocateBytes ?? DEFAULT_PREALLOCATE_BYTES);
    this.#bufferPosition = committed.end;
    this.#regionStart = committed.end;
  }

  /**
   * Creates a block file whose first header holds `header`. The file is written under a
   * temporary name, synced, renamed into place and its directory synced, so a crash never
   * leaves a file at `path` that cannot open. Throws FileExistsError if `path` exists.
   */
  static async create(
    path: string,
    header: Uint8Array,
    options: BlockFileOptions = {},
  ): Promise<BlockFile> {
    const fileSystem = options.fileSystem ?? nodeFileSystem;
    if (await fileSystem.exists(path)) throw new FileExistsError(path);
    const temporaryPath = `${path}.${randomBytes(6).toString('hex')}.creating`;
    const file = await fileSystem.create(temporaryPath);
    const empty: CommittedHeader = { position: 0, end: 0, generation: 0, payload: header };
    const blockFile = new BlockFile(path, file, empty, { ...options, readOnly: false });
    try {
      await blockFile.commit(header);
      if (await fileSystem.exists(path)) throw new FileExistsError(path);
      await fileSystem.rename(temporaryPath, path);
      await fileSystem.syncDirectory(dirname(path));
    } catch (error) {
      await blockFile.close().catch(() => undefined);
      await fileSystem.remove(temporaryPath).catch(() => undefined);
      throw error;
    }
    return blockFile;
  }

  /**
   * Opens an existing block file at its newest header that verifies. Opening for writing cuts
   * the bytes after that header (a torn or uncommitted tail) and syncs the cut. Throws
   * CorruptionError, without changing the file, when no header verifies.
   */
  static async open(path: string, options: BlockFileOptions = {}): Promise<BlockFile> {
    const fileSystem = options.fileSystem ?? nodeFileSystem;
    const readOnly = options.readOnly === true;
    const file = await fileSystem.open(path, readOnly ? 'read-only' : 'read-write');
    try {
      const size = file.size();
      const committed = findNewestHeader(path, file, size);
      if (committed === undefined) {
        throw new CorruptionError(path, size, 'no valid header in the file');
      }
      if (!readOnly && size > committed.end) {
        await file.truncate(committed.end);
        await file.datasync();
      }
      return new BlockFile(path, file, committed, options);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /** Payload of the newest durable header. */
  get header(): Uint8Array {
    return this.#committed.payload;
  }

  /** End of the newest durable header: the file's bytes before it never change. */
  get committedEnd(): number {
    return this.#committed.end;
  }

  /** Commit counter of the newest durable header. */
  get generation(): number {
    return this.#committed.generation;
  }

  /** Physical end of the file, counting appended bytes not yet written. */
  get end(): number {
    return this.#end;
  }

  get discipline(): CommitDiscipline {
    return this.#discipline;
  }

  /**
   * Appends a record and returns its pointer. The record is readable at once and becomes
   * durable with the next `commit` called after this append.
   */
  append(payload: Uint8Array): number {
    this.#checkWritable();
    assert(
      payload.length <= MAX_RECORD_BYTES,
      () => `record of ${payload.length} bytes is too large`,
    );
    const logicalLength = RECORD_PREFIX_BYTES + payload.length;
    this.#reserve(physicalLength(this.#end, logicalLength));
    if (this.#end % BLOCK_SIZE === 0) this.#putMarker(MARKER_DATA);
    const pointer = this.#end;
    const prefix = this.#lengthScratch;
    prefix.writeUInt32BE(payload.length, 0);
    const checksum = crc32c(payload, lengthChecksum(payload.length));
    this.#putLogical(prefix);
    prefix.writeUInt32BE(checksum >>> 0, 0);
    this.#putLogical(prefix);
    this.#putLogical(payload);
    this.stats.recordsAppended += 1;
    if (this.#bufferUsed - this.#bufferSealed >= FLUSH_THRESHOLD_BYTES) this.#seal();
    return pointer;
  }

  /**
   * Reads and verifies the record at `pointer`. Throws CorruptionError naming the path and
   * offset if the pointer, a marker, the length or the checksum is wrong. `expectedBytes` sizes
   * the first read; a longer record takes a second read. The payload goes into a buffer from
   * `allocator` (a `NodeCache` carves it out of a slab), else into an ArrayBuffer of its own.
   */
  read(pointer: number, expectedBytes = DEFAULT_EXPECTED_BYTES, allocator?: NodeAllocator): Buffer {
    this.#checkReadable();
    if (pointer <= 0 || pointer % BLOCK_SIZE === 0 || pointer + RECORD_PREFIX_BYTES > this.#end) {
      throw new CorruptionError(this.path, pointer, 'record pointer out of range');
    }
    const available = this.#end - pointer;
    // With an allocator that can keep part of a buffer, the record is read straight into the
    // node's memory and its markers squeezed out in place, which saves copying the payload.
    const inPlace = allocator?.keep !== undefined;
    let span = Math.min(physicalLength(pointer, RECORD_PREFIX_BYTES + expectedBytes), available);
    let physical = this.#readPhysical(
      pointer,
      span,
      inPlace ? allocator.allocate(span) : undefined,
    );
    const length = this.#readPrefixField(physical, pointer, 0);
    const recordSpan = physicalLength(pointer, RECORD_PREFIX_BYTES + length);
    if (length > MAX_RECORD_BYTES || recordSpan > available) {
      if (inPlace) allocator.keep!(physical, 0, 0);
      throw new CorruptionError(this.path, pointer, `record length ${length} out of range`);
    }
    if (recordSpan > span) {
      if (inPlace) allocator.keep!(physical, 0, 0);
      span = recordSpan;
      physical = this.#readPhysical(pointer, span, inPlace ? allocator.allocate(span) : undefined);
    }
    this.#checkMarkers(physical, pointer, recordSpan);
    const stored = this.#readPrefixField(physical, pointer, 4);
    let payload: Buffer;
    if (inPlace) {
      compactLogical(physical, pointer, recordSpan);
      payload = allocator.keep!(physical, RECORD_PREFIX_BYTES, length);
    } else {
      payload =
        allocator === undefined ? Buffer.allocUnsafeSlow(length) : allocator.allocate(length);
      const payloadPosition = pointer + physicalIndex(pointer, RECORD_PREFIX_BYTES);
      if (!copyLogical(physical, pointer, payloadPosition, length, payload, 0)) {
        throw new CorruptionError(this.path, pointer, 'data marker expected inside record');
      }
    }
    if (crc32c(payload, lengthChecksum(length)) >>> 0 !== stored) {
      throw new CorruptionError(this.path, pointer, 'record checksum mismatch');
    }
    this.stats.recordsRead += 1;
    return payload;
  }

  /** Throws CorruptionError unless every block start in the record's span holds MARKER_DATA. */
  #checkMarkers(physical: Buffer, pointer: number, span: number): void {
    const firstBlock = pointer - (pointer % BLOCK_SIZE) + BLOCK_SIZE;
    for (let block = firstBlock; block < pointer + span; block += BLOCK_SIZE) {
      if (physical[block - pointer] !== MARKER_DATA) {
        throw new CorruptionError(this.path, pointer, 'data marker expected inside record');
      }
    }
  }

  /**
   * Reads the u32 at logical `offset` of the record prefix at `pointer` from `physical`, the
   * record's physical bytes. Throws CorruptionError if a marker inside it is not data.
   */
  #readPrefixField(physical: Buffer, pointer: number, offset: number): number {
    const index = physicalIndex(pointer, offset);
    if (physicalIndex(pointer, offset + 3) === index + 3) return physical.readUInt32BE(index);
    const prefix = this.#lengthScratch;
    if (!copyLogical(physical, pointer, pointer + index, 4, prefix, 0)) {
      throw new CorruptionError(this.path, pointer, 'data marker expected inside record');
    }
    return prefix.readUInt32BE(0);
  }

  /**
   * Commits every record appended before this call: they become durable, then a header
   * holding `header` (opaque bytes) that a reopen returns. Commits resolve in call order.
   * With `sync: false` the header is only written; a later synced commit makes it durable.
   * Rejects with FileFailedError if a write or fsync fails, and the handle is then closed.
   * On a failed, closed or read-only handle it rejects at once.
   */
  commit(header: Uint8Array, options: CommitOptions = {}): Promise<void> {
    const sync = options.sync !== false || this.#discipline === 'two-fsync';
    try {
      this.#checkWritable();
    } catch (error) {
      return Promise.reject(error);
    }
    this.#padToBlock();
    if (this.#discipline === 'two-fsync') {
      this.#seal();
    } else {
      // The data and the header go out in one write, so only the checksum is taken now.
      this.#sumUnsealed();
    }
    const position = this.#end;
    assert(position % BLOCK_SIZE === 0, 'a header starts at a block boundary');
    this.#generation += 1;
    const fields = encodeHeader({
      discipline: this.#discipline,
      generation: this.#generation,
      regionStart: this.#regionStart,
      regionChecksum: this.#discipline === 'one-fsync' ? this.#regionChecksum : 0,
      payload: header,
    });
    this.#reserve(physicalLength(position, fields.length));
    this.#putMarker(MARKER_HEADER);
    this.#putLogical(fields);
    // With two fsyncs the header is written only once the data before it is durable.
    const headerChunk = this.#seal(this.#discipline === 'two-fsync');
    assert(headerChunk !== undefined, 'a header is never empty');
    const committed: CommittedHeader = {
      position,
      end: this.#end,
      generation: this.#generation,
      payload: Uint8Array.from(header),
    };
    if (sync) {
      this.#regionStart = this.#end;
      this.#regionChecksum = 0;
    }
    return this.#enqueue(async () => {
      if (!sync) {
        await this.#writesBefore(committed.end);
        this.stats.commits += 1;
        this.stats.unsyncedCommits += 1;
        return;
      }
      if (this.#discipline === 'two-fsync') {
        await this.#writesBefore(position);
        await this.#sync();
        headerChunk.heldUntilSync = false;
        this.#startWrites();
      }
      await this.#writesBefore(committed.end);
      await this.#sync();
      this.#committed = committed;
      this.stats.commits += 1;
    });
  }

  /**
   * Waits for commits in flight, then closes the handle and drops its nodes from
   * `NodeCache.shared` (other caches are their owner's to clear). Records appended after the
   * last commit are dropped. Closing a failed or closed handle does nothing.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#queue;
    if (this.#closed) return;
    this.#closed = true;
    NodeCache.shared.dropFile(this.id);
    await this.#settled();
    await this.#file.close();
  }

  #checkReadable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new FileClosedError(this.path, 'the block file is closed');
  }

  #checkWritable(): void {
    this.#checkReadable();
    if (this.#readOnly) throw new FileClosedError(this.path, 'the block file is open read-only');
  }

  /** Makes room for `bytes` more bytes in the append buffer. */
  #reserve(bytes: number): void {
    if (this.#bufferUsed + bytes <= this.#buffer.length) return;
    this.#seal();
    const full = this.#appendBuffer;
    if (full.unwrittenChunks === 0) this.#recycle(full);
    const spare = bytes <= APPEND_BUFFER_BYTES ? this.#spareBuffers.pop() : undefined;
    this.#appendBuffer = spare ?? {
      bytes: Buffer.allocUnsafeSlow(Math.max(APPEND_BUFFER_BYTES, bytes)),
      unwrittenChunks: 0,
    };
    this.#buffer = this.#appendBuffer.bytes;
    this.#bufferPosition = this.#end;
    this.#bufferUsed = 0;
    this.#bufferSealed = 0;
    this.#bufferSummed = 0;
  }

  #putMarker(marker: number): void {
    assert(this.#end % BLOCK_SIZE === 0, 'markers sit at block starts');
    this.#buffer[this.#bufferUsed] = marker;
    this.#bufferUsed += 1;
    this.#end += 1;
  }

  /** Copies logical bytes into the buffer, inserting a data marker at each block start. */
  #putLogical(source: Uint8Array): void {
    let offset = 0;
    while (offset < source.length) {
      if (this.#end % BLOCK_SIZE === 0) {
        this.#putMarker(MARKER_DATA);
        continue;
      }
      const count = Math.min(BLOCK_SIZE - (this.#end % BLOCK_SIZE), source.length - offset);
      this.#buffer.set(
        offset === 0 && count === source.length ? source : source.subarray(offset, offset + count),
        this.#bufferUsed,
      );
      this.#bufferUsed += count;
      this.#end += count;
      offset += count;
    }
  }

  #padToBlock(): void {
    const padding = (BLOCK_SIZE - (this.#end % BLOCK_SIZE)) % BLOCK_SIZE;
    if (padding === 0) return;
    this.#reserve(padding);
    this.#buffer.fill(0, this.#bufferUsed, this.#bufferUsed + padding);
    this.#bufferUsed += padding;
    this.#end += padding;
  }

  /**
   * Seals the unsealed part of the buffer as a chunk, adds it to the region checksum
   * (a synced `commit` resets the checksum after sealing its header) and starts its write unless
   * `holdWrite` is set. Returns the chunk, or undefined if nothing was unsealed.
   */
  #seal(holdWrite = false): Chunk | undefined {
    if (this.#bufferUsed === this.#bufferSealed) return undefined;
    this.#sumUnsealed();
    const bytes = this.#buffer.subarray(this.#bufferSealed, this.#bufferUsed);
    const position = this.#bufferPosition + this.#bufferSealed;
    const chunk: Chunk = {
      position,
      bytes,
      owner: this.#appendBuffer,
      write: undefined,
      heldUntilSync: holdWrite,
      done: false,
    };
    this.#bufferSealed = this.#bufferUsed;
    this.#appendBuffer.unwrittenChunks += 1;
    this.#chunks.push(chunk);
    this.#startWrites();
    return chunk;
  }

  /** Adds the buffered bytes not yet counted to the region checksum. */
  #sumUnsealed(): void {
    if (this.#bufferSummed === this.#bufferUsed) return;
    const bytes = this.#buffer.subarray(this.#bufferSummed, this.#bufferUsed);
    this.#regionChecksum = crc32c(bytes, this.#regionChecksum);
    this.#bufferSummed = this.#bufferUsed;
  }

  /** Starts the writes of sealed chunks, in file order, up to the first one held until a sync. */
  #startWrites(): void {
    while (this.#unstarted < this.#chunks.length && this.#failure === undefined) {
      const chunk = this.#chunks[this.#unstarted]!;
      if (chunk.heldUntilSync) return;
      this.#unstarted += 1;
      const small = chunk.bytes.length <= SYNC_WRITE_MAX_BYTES;
      chunk.write = small ? this.#writeChunkSync(chunk) : this.#track(this.#writeChunk(chunk));
      // A failure is raised by the commit that waits for this write.
      chunk.write.catch(() => undefined);
      const chunkEnd = chunk.position + chunk.bytes.length;
      this.#allocatedEnd = Math.max(this.#allocatedEnd, chunkEnd);
      // Large chunks come from bulk copies such as compaction, where zeros ahead would double
      // the bytes written. The next small chunk allocates again.
      if (small) this.#allocateAhead(chunkEnd);
    }
  }

  /**
   * Writes zeros after the data once fewer than half a step of them are left. Data written over
   * durable zeros leaves the file's length unchanged, so its fsync has no metadata to commit.
   * An append that extends the file has a new length to commit. Every byte at or after
   * `#allocatedEnd` is past every write started, so the fill never overwrites data. A fill that
   * fails with a system error only ends preallocation for this handle: the zeros are not data,
   * and the data writes report their own failures.
   */
  #allocateAhead(dataEnd: number): void {
    const step = this.#preallocateBytes;
    if (step === 0 || this.#failure !== undefined || this.#allocatedEnd - dataEnd >= step / 2) {
      return;
    }
    try {
      this.#file.zeroFill(this.#allocatedEnd, step);
    } catch (error) {
      // Only a system error (a full disk, say) ends preallocation; anything else is a bug.
      if (typeof (error as NodeJS.ErrnoException).code !== 'string') throw error;
      this.#preallocateBytes = 0;
      return;
    }
    this.#allocatedEnd += step;
    this.stats.bytesPreallocated += step;
  }

  async #writeChunk(chunk: Chunk): Promise<void> {
    try {
      await this.#file.write(chunk.bytes, chunk.position);
    } catch (error) {
      throw this.#fail(new FileFailedError(this.path, 'write', error));
    }
    this.#chunkWritten(chunk);
  }

  #writeChunkSync(chunk: Chunk): Promise<void> {
    try {
      this.#file.writeSync(chunk.bytes, chunk.position);
    } catch (error) {
      return Promise.reject(this.#fail(new FileFailedError(this.path, 'write', error)));
    }
    this.#chunkWritten(chunk);
    return RESOLVED;
  }

  /** Marks `chunk` written and drains the written chunks at the front of the queue. */
  #chunkWritten(chunk: Chunk): void {
    chunk.done = true;
    this.stats.bytesWritten += chunk.bytes.length;
    while (this.#chunks.length > 0 && this.#chunks[0]!.done) {
      const written = this.#chunks.shift()!;
      this.#unstarted -= 1;
      this.#writtenEnd = written.position + written.bytes.length;
      // Reads take drained chunks from the file, so only now may the buffer be refilled.
      written.owner.unwrittenChunks -= 1;
      if (written.owner.unwrittenChunks === 0 && written.owner !== this.#appendBuffer) {
        this.#recycle(written.owner);
      }
    }
    if (this.#chunks.length === 0 && this.#bufferSealed === this.#bufferUsed) {
      // Everything appended is in the file: appends start again at the front of the buffer,
      // so a file taking small commits keeps touching the same few pages of its buffer.
      this.#bufferPosition = this.#end;
      this.#bufferUsed = 0;
      this.#bufferSealed = 0;
      this.#bufferSummed = 0;
    }
  }

  /** Keeps a full append buffer, all of whose chunks are written, for reuse. */
  #recycle(full: AppendBuffer): void {
    if (full.bytes.length !== APPEND_BUFFER_BYTES) return;
    if (this.#spareBuffers.length < SPARE_APPEND_BUFFERS) this.#spareBuffers.push(full);
  }

  /** Waits until every chunk before physical offset `end` is written; raises a failure. */
  async #writesBefore(end: number): Promise<void> {
    const writes: Array<Promise<void>> = [];
    for (const chunk of this.#chunks) {
      if (this.#failure !== undefined) throw this.#failure;
      if (chunk.position >= end) break;
      assert(chunk.write !== undefined, 'a chunk before a commit point has started its write');
      writes.push(chunk.write);
    }
    await Promise.all(writes);
    if (this.#failure !== undefined) throw this.#failure;
  }

  async #sync(): Promise<void> {
    try {
      await this.#track(this.#file.datasync());
    } catch (error) {
      throw this.#fail(new FileFailedError(this.path, 'fsync', error));
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.stats.fsyncs += 1;
  }

  #enqueue(operation: () => Promise<void>): Promise<void> {
    const step = this.#queue.then(() => {
      if (this.#failure !== undefined) throw this.#failure;
      return operation();
    });
    this.#queue = step.catch(() => undefined);
    return step;
  }

  /** Counts an operation on the descriptor as in flight until it settles. */
  #track(operation: Promise<void>): Promise<void> {
    this.#inFlight.add(operation);
    const forget = () => this.#inFlight.delete(operation);
    operation.then(forget, forget);
    return operation;
  }

  /** Resolves once no write or fsync is in flight. */
  async #settled(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /**
   * Records the first failure and closes the handle once no write or fsync is in flight, so
   * that no queued operation reaches a reused descriptor. Returns the failure to raise.
   */
  #fail(error: FileFailedError): StorageError {
    if (this.#failure === undefined) {
      this.#failure = error;
      if (!this.#closed) {
        this.#closed = true;
        this.#settled()
          .then(() => this.#file.close())
          .catch(() => undefined);
      }
    }
    return this.#failure;
  }

  /**
   * Returns `length` physical bytes at `position`, from the file or the unwritten chunks, in
   * `into` when given, else in a scratch buffer that the next read reuses.
   */
  #readPhysical(position: number, length: number, into?: Buffer): Buffer {
    if (into === undefined && this.#scratch.length < length) {
      this.#scratch = Buffer.allocUnsafeSlow(length);
    }
    const target = into ?? this.#scratch;
    const end = position + length;
    if (position < this.#writtenEnd) {
      const count = Math.min(end, this.#writtenEnd) - position;
      const read = this.#file.readSync(target, 0, count, position);
      if (read < count) {
        throw new CorruptionError(this.path, position + read, 'file shorter than its records');
      }
    }
    for (const chunk of this.#chunks) {
      copyOverlap(chunk.position, chunk.bytes, chunk.bytes.length, position, end, target);
    }
    copyOverlap(this.#bufferPosition, this.#buffer, this.#bufferUsed, position, end, target);
    return target;
  }
}

/** Copies the part of `source` (`sourceLength` bytes at file offset `sourcePosition`) in [position, end). */
function copyOverlap(
  sourcePosition: number,
  source: Buffer,
  sourceLength: number,
  position: number,
  end: number,
  target: Buffer,
): void {
  const start = Math.max(sourcePosition, position);
  const stop = Math.min(sourcePosition + sourceLength, end);
  if (start >= stop) return;
  source.copy(target, start - position, start - sourcePosition, stop - sourcePosition);
}

/**
 * Scans block starts from the end of the file backwards and returns the newest header that
 * verifies, or undefined if none does. A torn or partial tail is skipped this way.
 */
function findNewestHeader(path: string, file: DbFile, size: number): CommittedHeader | undefined {
  const marker = Buffer.alloc(1);
  const lastBlock = Math.floor((size - 1) / BLOCK_SIZE) * BLOCK_SIZE;
  for (let position = lastBlock; position >= 0; position -= BLOCK_SIZE) {
    file.readSync(marker, 0, 1, position);
    if (marker[0] !== MARKER_HEADER) continue;
    const header = readHeaderAt(path, file, position, size);
    if (header !== undefined) return header;
  }
  return undefined;
}

/** Reads and verifies the header candidate at block start `position`. */
function readHeaderAt(
  path: string,
  file: DbFile,
  position: number,
  size: number,
): CommittedHeader | undefined {
  const fixed = readLogicalAt(file, position, HEADER_FIXED_BYTES, size);
  if (fixed === undefined) return undefined;
  const prefix = decodeHeaderPrefix(fixed);
  if (!prefix.valid) return undefined;
  const total = HEADER_FIXED_BYTES + prefix.payloadLength;
  const bytes = readLogicalAt(file, position, total, size);
  if (bytes === undefined) return undefined;
  const fields = decodeHeader(bytes);
  if (fields === undefined) return undefined;
  if (prefix.version !== FORMAT_VERSION) {
    throw new UnsupportedFormatError(path, position, prefix.version);
  }
  if (fields.discipline === 'one-fsync' && !regionVerifies(file, fields, position)) {
    return undefined;
  }
  return {
    position,
    end: position + physicalLength(position, total),
    generation: fields.generation,
    payload: Uint8Array.from(fields.payload),
  };
}

/** Reads `length` logical bytes of the header at block start `position`, if the file has them. */
function readLogicalAt(
  file: DbFile,
  position: number,
  length: number,
  size: number,
): Buffer | undefined {
  const span = physicalLength(position, length);
  if (position + span > size) return undefined;
  const physical = Buffer.allocUnsafe(span);
  if (file.readSync(physical, 0, span, position) < span) return undefined;
  const logical = Buffer.allocUnsafe(length);
  return copyLogical(physical, position, position + 1, length, logical, 0) ? logical : undefined;
}

/** Checks a one-fsync header's CRC32C of the physical bytes between the previous header and it. */
function regionVerifies(
  file: DbFile,
  fields: { regionStart: number; regionChecksum: number },
  position: number,
): boolean {
  if (fields.regionStart > position) return false;
  const window = Buffer.allocUnsafe(REGION_READ_BYTES);
  let checksum = 0;
  for (let offset = fields.regionStart; offset < position; offset += REGION_READ_BYTES) {
    const count = Math.min(REGION_READ_BYTES, position - offset);
    if (file.readSync(window, 0, count, offset) < count) return false;
    checksum = crc32c(window.subarray(0, count), checksum);
  }
  return checksum >>> 0 === fields.regionChecksum;
}
