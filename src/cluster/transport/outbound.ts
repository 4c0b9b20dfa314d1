/**
 * The send side of one connection's two lanes, without I/O. Items wait here until the
 * connection drains them into wire chunks:
 * - every control frame goes out at the next drain, ahead of queued bulk data;
 * - bulk items go out in FIFO order, a large one as fragments of `fragmentBytes`;
 * - a drain emits bulk frames only up to an allowance, so control frames queued later overtake
 *   the rest of a large bulk item instead of waiting behind it;
 * - small frames of one drain are copied into one chunk, so many messages become one write.
 *
 * Fragments of one bulk item are never interleaved with other bulk frames: the bulk lane is
 * one ordered stream, and only control frames go between its fragments.
 *
 * Invariant: `queuedBytes` equals `controlQueuedBytes` (the sum of the queued control frames'
 * lengths) plus, per queued bulk item, its packed length minus the payload bytes drained.
 */
import { assert } from '../../util/assert.js';
import { itemBytes, type PackedItem } from './codec.js';
import { FRAME_HEADER_BYTES, FrameType, writeFrameHeader } from './frame.js';
import type { LaneStats } from './stats.js';

/** Tag of a queued item that is not a request. */
export const NO_TAG = 0;

/** Frames at most this long are copied together into one chunk at drain. */
const COALESCE_MAX_BYTES = 16 * 1024;

interface QueuedFrame {
  frame: Buffer;
  tag: number;
}

interface QueuedBulk {
  packed: PackedItem;
  tag: number;
  /** Encoded item bytes (after the header space) already drained as fragments. */
  drainedBytes: number;
}

/** A FIFO with O(1) shift, compacted as it empties. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    const item = this.#items[this.#head];
    if (item === undefined) return undefined;
    this.#head += 1;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    }
    return item;
  }

  /** Removes the first item matching `predicate`; returns whether one was removed. */
  remove(predicate: (item: T) => boolean): T | undefined {
    for (let index = this.#head; index < this.#items.length; index++) {
      const item = this.#items[index]!;
      if (predicate(item)) {
        this.#items.splice(index, 1);
        return item;
      }
    }
    return undefined;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let index = this.#head; index < this.#items.length; index++) yield this.#items[index]!;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

export interface LaneTallies {
  control: LaneStats;
  bulk: LaneStats;
}

export class OutboundQueue {
  readonly #control = new Fifo<QueuedFrame>();
  readonly #bulk = new Fifo<QueuedBulk>();
  #queuedBytes = 0;
  #controlQueuedBytes = 0;

  constructor(
    readonly fragmentBytes: number,
    readonly tallies: LaneTallies,
  ) {}

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** The part of `queuedBytes` that is control frames. */
  get controlQueuedBytes(): number {
    return this.#controlQueuedBytes;
  }

  get hasControl(): boolean {
    return this.#control.length > 0;
  }

  get hasBulk(): boolean {
    return this.#bulk.length > 0;
  }

  /** Queues an item on the control lane; it must fit in one frame of `fragmentBytes`. */
  pushControlItem(packed: PackedItem, tag: number): void {
    const payloadBytes = itemBytes(packed);
    assert(payloadBytes <= this.fragmentBytes, 'control item larger than a fragment');
    writeFrameHeader(packed, 0, FrameType.control, payloadBytes);
    this.#control.push({ frame: packed, tag });
    this.#queuedBytes += packed.length;
    this.#controlQueuedBytes += packed.length;
    this.tallies.control.itemsSent += 1;
  }

  /** Queues a complete frame (a ping or pong) on the control lane. */
  pushControlFrame(frame: Buffer): void {
    this.#control.push({ frame, tag: NO_TAG });
    this.#queuedBytes += frame.length;
    this.#controlQueuedBytes += frame.length;
  }

  /** Queues an item on the bulk lane; one larger than `fragmentBytes` travels as fragments. */
  pushBulkItem(packed: PackedItem, tag: number): void {
    this.#bulk.push({ packed, tag, drainedBytes: 0 });
    this.#queuedBytes += packed.length;
    this.tallies.bulk.itemsSent += 1;
  }

  /**
   * Returns the wire chunks of every control frame, then of bulk frames until at least
   * `bulkAllowanceBytes` of bulk payload went out (at least one frame when the allowance is
   * positive) or the bulk lane is empty.
   */
  drain(bulkAllowanceBytes: number): Buffer[] {
    const pieces: Buffer[] = [];
    this.#drainControl(pieces);
    let bulkDrained = 0;
    while (bulkDrained < bulkAllowanceBytes && this.#bulk.length > 0) {
      bulkDrained += this.#drainBulkFrame(pieces);
    }
    return coalesce(pieces);
  }

  /**
   * Removes the item tagged `tag` if none of it was drained yet; returns whether it did.
   * Such an item surely never reached the socket.
   */
  removeUnstarted(tag: number): boolean {
    assert(tag !== NO_TAG, 'removeUnstarted needs a request tag');
    const frame = this.#control.remove((queued) => queued.tag === tag);
    if (frame !== undefined) {
      this.#queuedBytes -= frame.frame.length;
      this.#controlQueuedBytes -= frame.frame.length;
      return true;
    }
    const bulk = this.#bulk.remove((queued) => queued.tag === tag && queued.drainedBytes === 0);
    if (bulk !== undefined) {
      this.#queuedBytes -= bulk.packed.length;
      return true;
    }
    return false;
  }

  /** Empties the queue; returns the tags of the items none of which was drained. */
  clear(): Set<number> {
    const unstarted = new Set<number>();
    for (const queued of this.#control) if (queued.tag !== NO_TAG) unstarted.add(queued.tag);
    for (const queued of this.#bulk) {
      if (queued.tag !== NO_TAG && queued.drainedBytes === 0) unstarted.add(queued.tag);
    }
    this.#control.clear();
    this.#bulk.clear();
    this.#queuedBytes = 0;
    this.#controlQueuedBytes = 0;
    return unstarted;
  }

  #drainControl(pieces: Buffer[]): void {
    const tally = this.tallies.control;
    for (let queued = this.#control.shift(); queued !== undefined; queued = this.#control.shift()) {
      pieces.push(queued.frame);
      this.#queuedBytes -= queued.frame.length;
      this.#controlQueuedBytes -= queued.frame.length;
      tally.framesSent += 1;
      tally.bytesSent += queued.frame.length;
    }
  }

  /** Drains the next bulk frame into `pieces`; returns its payload length. */
  #drainBulkFrame(pieces: Buffer[]): number {
    const queued = this.#bulk.peek()!;
    const tally = this.tallies.bulk;
    const totalBytes = itemBytes(queued.packed);
    if (queued.drainedBytes === 0 && totalBytes <= this.fragmentBytes) {
      writeFrameHeader(queued.packed, 0, FrameType.bulk, totalBytes);
      pieces.push(queued.packed);
      this.#finishBulkItem(queued, totalBytes);
      tally.framesSent += 1;
      tally.bytesSent += queued.packed.length;
      return totalBytes;
    }
    const start = FRAME_HEADER_BYTES + queued.drainedBytes;
    const fragmentBytes = Math.min(this.fragmentBytes, totalBytes - queued.drainedBytes);
    const isLast = queued.drainedBytes + fragmentBytes === totalBytes;
    const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
    writeFrameHeader(header, 0, isLast ? FrameType.bulkEnd : FrameType.bulkPart, fragmentBytes);
    pieces.push(header, queued.packed.subarray(start, start + fragmentBytes));
    queued.drainedBytes += fragmentBytes;
    this.#queuedBytes -= fragmentBytes;
    if (isLast) this.#finishBulkItem(queued, 0);
    tally.framesSent += 1;
    tally.bytesSent += FRAME_HEADER_BYTES + fragmentBytes;
    return fragmentBytes;
  }

  /** Pops the head bulk item; `remainingBytes` of its payload were not yet subtracted. */
  #finishBulkItem(queued: QueuedBulk, remainingBytes: number): void {
    assert(this.#bulk.peek() === queued, 'finishing a bulk item that is not the head');
    this.#bulk.shift();
    this.#queuedBytes -= FRAME_HEADER_BYTES + remainingBytes;
    assert(this.#queuedBytes >= 0, () => `queued bytes went negative: ${this.#queuedBytes}`);
  }
}

/** Copies each run of small pieces into one buffer; large pieces pass through as they are. */
function coalesce(pieces: Buffer[]): Buffer[] {
  if (pieces.length <= 1) return pieces;
  const chunks: Buffer[] = [];
  let run: Buffer[] = [];
  let runBytes = 0;
  const endRun = (): void => {
    if (run.length === 1) chunks.push(run[0]!);
    else if (run.length > 1) chunks.push(Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const piece of pieces) {
    if (piece.length > COALESCE_MAX_BYTES) {
      endRun();
      chunks.push(piece);
    } else {
      run.push(piece);
      runBytes += piece.length;
    }
  }
  endRun();
  return chunks;
}
