/**
 * Snapshot transfer between nodes: a follower that needs entries its leader has discarded
 * fetches the leader's database file, up to a durable header, in checksummed chunks over the
 * peer transport's bulk lane (heartbeats travel on the control lane, so they are not delayed).
 *
 * The leader pins a durable prefix of its file per transfer (`SnapshotServer`), and keeps the
 * pin while chunks keep being requested, so a transfer broken by a lost connection resumes at
 * the offset it reached. The follower (`fetchSnapshot`) writes the chunks to a temporary file,
 * syncs it, and hands it to the engine's `installSnapshot`.
 */
import { randomBytes } from 'node:crypto';
import { crc32c } from '@node-rs/crc32';
import { type DatabaseFile, type DurablePin, pinDurable } from '../engine/index.js';
import type { Membership, NodeId, SnapshotMeta } from '../raft/index.js';
import type { FileSystem } from '../storage/io.js';
import type { Logger } from '../util/log.js';
import { RequestError, type Transport } from './transport/index.js';

/** Bytes per chunk: large enough to stream quickly, small enough to interleave with others. */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** A pin no chunk was requested from for this long is released. */
const PIN_IDLE_MS = 60_000;
const CHUNK_TIMEOUT_MS = 30_000;
const RETRY_PAUSE_MS = 200;
const ID_BYTES = 8;

export interface SnapshotChunkRequest {
  readonly kind: 'snapshot';
  readonly group: string;
  /** The transfer to resume, or null to pin a new one. */
  readonly id: string | null;
  readonly offset: number;
}

export type SnapshotChunkReply =
  | {
      readonly status: 'ok';
      readonly id: string;
      readonly size: number;
      readonly meta: readonly [number, number, string[], string[], string[]];
      readonly offset: number;
      readonly data: Uint8Array;
      readonly crc: number;
    }
  | { readonly status: 'unknown_group' | 'expired' };

interface Pin {
  readonly pin: DurablePin;
  readonly group: string;
  lastUsedAt: number;
}

/** The leader's side: pins durable prefixes and serves their chunks. */
export class SnapshotServer {
  readonly #pins = new Map<string, Pin>();
  /** Transfers whose last chunk was served, per group. */
  readonly sent = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  /** Serves one chunk; `file` is the group's database file, or null when the group is unknown. */
  serve(request: SnapshotChunkRequest, file: DatabaseFile | null): SnapshotChunkReply {
    let entry = request.id === null ? undefined : this.#pins.get(request.id);
    if (request.id !== null && entry === undefined) return { status: 'expired' };
    if (entry === undefined) {
      if (file === null) return { status: 'unknown_group' };
      const id = randomBytes(ID_BYTES).toString('hex');
      entry = { pin: pinDurable(file), group: request.group, lastUsedAt: Date.now() };
      this.#pins.set(id, entry);
      this.log.info(
        { group: request.group, size: entry.pin.size, index: entry.pin.meta.index, transfer: id },
        'snapshot transfer started',
      );
      return this.#chunk(id, entry, 0);
    }
    entry.lastUsedAt = Date.now();
    return this.#chunk(request.id!, entry, request.offset);
  }

  /** Releases pins nobody asked for in a while. */
  expire(now = Date.now()): void {
    for (const [id, entry] of this.#pins) {
      if (now - entry.lastUsedAt < PIN_IDLE_MS) continue;
      this.#pins.delete(id);
      void entry.pin.release();
    }
  }

  async close(): Promise<void> {
    for (const entry of this.#pins.values()) await entry.pin.release();
    this.#pins.clear();
  }

  #chunk(id: string, entry: Pin, offset: number): SnapshotChunkReply {
    const { pin } = entry;
    const start = Math.max(0, Math.min(offset, pin.size));
    const data = pin.read(start, SNAPSHOT_CHUNK_BYTES);
    if (start + data.length >= pin.size) {
      this.sent.set(entry.group, (this.sent.get(entry.group) ?? 0) + 1);
      this.log.info({ group: entry.group, transfer: id }, 'snapshot transfer served');
    }
    const { index, term, membership } = pin.meta;
    return {
      status: 'ok',
      id,
      size: pin.size,
      meta: [
        index,
        term,
        [...membership.voters],
        [...membership.learners],
        [...membership.votersOutgoing],
      ],
      offset: start,
      data,
      crc: crc32c(data),
    };
  }
}

export interface FetchOptions {
  readonly transport: Transport;
  readonly fileSystem: FileSystem;
  readonly group: string;
  readonly leader: NodeId;
  /** The temporary file the chunks go to. */
  readonly path: string;
  readonly deadline: number;
  readonly log: Logger;
  /** Called after each chunk with the bytes received so far and the file's size. */
  readonly onProgress?: (bytesDone: number, totalBytes: number) => void;
}

/**
 * Fetches a snapshot of `group` from `leader` into `path` (synced), resuming after broken
 * connections until `deadline`, and returns the metadata of the snapshot it holds.
 */
export async function fetchSnapshot(options: FetchOptions): Promise<SnapshotMeta> {
  const { transport, fileSystem, path } = options;
  await fileSystem.remove(path);
  const out = await fileSystem.create(path);
  try {
    let id: string | null = null;
    let offset = 0;
    let size = Number.POSITIVE_INFINITY;
    let meta: SnapshotMeta | null = null;
    while (offset < size) {
      if (Date.now() >= options.deadline) throw new Error('snapshot transfer timed out');
      const request: SnapshotChunkRequest = { kind: 'snapshot', group: options.group, id, offset };
      let reply: SnapshotChunkReply;
      try {
        reply = (await transport.request(options.leader, request, {
          timeoutMs: CHUNK_TIMEOUT_MS,
        })) as SnapshotChunkReply;
      } catch (error) {
        if (!(error instanceof RequestError)) throw error;
        options.log.debug(
          { group: options.group, offset, err: error },
          'snapshot chunk failed; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
        continue;
      }
      if (reply.status === 'expired' && id !== null) {
        // The leader dropped the pin (restart, idle): start over with a new one.
        id = null;
        offset = 0;
        await out.truncate(0);
        continue;
      }
      if (reply.status !== 'ok') throw new Error(`snapshot source answered ${reply.status}`);
      checkChunk(reply, offset, id);
      if (id === null) {
        id = reply.id;
        size = reply.size;
        meta = metaOf(reply.meta);
      }
      await out.write(reply.data, offset);
      offset += reply.data.byteLength;
      options.onProgress?.(offset, size);
    }
    await out.datasync();
    if (meta === null) throw new Error('snapshot transfer ended without metadata');
    return meta;
  } finally {
    await out.close();
  }
}

function checkChunk(
  reply: Extract<SnapshotChunkReply, { status: 'ok' }>,
  offset: number,
  id: string | null,
): void {
  if (id !== null && reply.id !== id)
    throw new Error(`snapshot chunk of transfer ${reply.id}, expected ${id}`);
  if (reply.offset !== offset)
    throw new Error(`snapshot chunk at ${reply.offset}, expected ${offset}`);
  if (!(reply.data instanceof Uint8Array)) throw new Error('snapshot chunk without data');
  if (crc32c(reply.data) !== reply.crc) throw new Error(`snapshot chunk at ${offset} is corrupt`);
  if (reply.data.byteLength === 0 && offset < reply.size) throw new Error('empty snapshot chunk');
}

function metaOf(value: readonly [number, number, string[], string[], string[]]): SnapshotMeta {
  const [index, term, voters, learners, votersOutgoing] = value;
  const membership: Membership = { voters, learners, votersOutgoing };
  return { index, term, membership };
}
