/**
 * The receive side of one authenticated connection, without I/O: sorts decoded frames into
 * control items, bulk items (reassembling fragments) and pings and pongs. Raises
 * ProtocolError for a frame that breaks the protocol: an unknown or handshake frame type, a
 * whole bulk frame in the middle of a fragmented item, a non-final fragment smaller than
 * MIN_FRAGMENT_BYTES, or an item over `maxMessageBytes`. Decoding items is the caller's job.
 *
 * Invariant: the fragments held add up to at most `maxMessageBytes`, in at most
 * maxMessageBytes / MIN_FRAGMENT_BYTES buffers.
 */
import { FRAME_HEADER_BYTES, FrameType, MIN_FRAGMENT_BYTES, ProtocolError } from './frame.js';
import type { LaneTallies } from './outbound.js';

export type Lane = 'control' | 'bulk';

/** Size of a ping or pong payload: a u32 sequence number. */
export const PING_PAYLOAD_BYTES = 4;

export interface InboundHandlers {
  onItem(lane: Lane, payload: Buffer): void;
  onPing(payload: Buffer): void;
  onPong(payload: Buffer): void;
}

export class Inbound {
  #parts: Buffer[] = [];
  #partBytes = 0;

  constructor(
    readonly maxMessageBytes: number,
    readonly tallies: LaneTallies,
    readonly handlers: InboundHandlers,
  ) {}

  /** Handles one frame; bound, so it can serve as a FrameDecoder handler. */
  readonly onFrame = (type: number, payload: Buffer): void => {
    switch (type) {
      case FrameType.ping:
      case FrameType.pong:
        this.#onPingOrPong(type, payload);
        return;
      case FrameType.control:
        this.#count(this.tallies.control, payload, true);
        this.#checkItemSize(payload.length);
        this.handlers.onItem('control', payload);
        return;
      case FrameType.bulk:
        this.#onWholeBulk(payload);
        return;
      case FrameType.bulkPart:
        this.#onFragment(payload, false);
        return;
      case FrameType.bulkEnd:
        this.#onFragment(payload, true);
        return;
      default:
        throw new ProtocolError(`unexpected frame type ${type} on an open connection`);
    }
  };

  #onPingOrPong(type: number, payload: Buffer): void {
    if (payload.length !== PING_PAYLOAD_BYTES) {
      throw new ProtocolError(`ping or pong payload of ${payload.length} bytes`);
    }
    this.#count(this.tallies.control, payload, false);
    if (type === FrameType.ping) this.handlers.onPing(payload);
    else this.handlers.onPong(payload);
  }

  #onWholeBulk(payload: Buffer): void {
    if (this.#parts.length > 0) {
      throw new ProtocolError('whole bulk frame inside a fragmented item');
    }
    this.#count(this.tallies.bulk, payload, true);
    this.#checkItemSize(payload.length);
    this.handlers.onItem('bulk', payload);
  }

  #onFragment(payload: Buffer, isLast: boolean): void {
    if (!isLast && payload.length < MIN_FRAGMENT_BYTES) {
      throw new ProtocolError(`non-final fragment of ${payload.length} bytes`);
    }
    this.#checkItemSize(this.#partBytes + payload.length);
    this.#count(this.tallies.bulk, payload, isLast);
    this.#parts.push(payload);
    this.#partBytes += payload.length;
    if (!isLast) return;
    const item = this.#parts.length === 1 ? payload : Buffer.concat(this.#parts, this.#partBytes);
    this.#parts = [];
    this.#partBytes = 0;
    this.handlers.onItem('bulk', item);
  }

  #checkItemSize(bytes: number): void {
    if (bytes > this.maxMessageBytes) {
      throw new ProtocolError(
        `item of at least ${bytes} bytes exceeds the limit of ${this.maxMessageBytes} bytes`,
      );
    }
  }

  #count(tally: LaneTallies['control'], payload: Buffer, completesItem: boolean): void {
    tally.framesReceived += 1;
    tally.bytesReceived += FRAME_HEADER_BYTES + payload.length;
    if (completesItem) tally.itemsReceived += 1;
  }
}
