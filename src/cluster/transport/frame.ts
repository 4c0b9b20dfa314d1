/**
 * Frames: how the byte stream of a peer connection is cut into units. Every frame is
 *
 *   u32 big-endian payload length | u8 frame type | payload
 *
 * The payload length excludes the 5-byte header. A frame never exceeds MAX_FRAME_PAYLOAD_BYTES
 * (a protocol constant, the same on every node), so a receiver can reject an oversized frame
 * from its header alone, before buffering anything. Larger messages travel as several frames
 * (see outbound.ts and inbound.ts). `docs/transport.md` gives the layout of each payload.
 *
 * This module does no I/O: `FrameDecoder` turns chunks of a stream, split anywhere, into
 * frames and raises `ProtocolError` on a frame it must not buffer.
 */
import { assert } from '../../util/assert.js';

export const FRAME_HEADER_BYTES = 5;
/** Largest frame payload on the wire. Fragment sizes are configured at or below it. */
export const MAX_FRAME_PAYLOAD_BYTES = 1024 * 1024;
/** Smallest fragment of a message cut into parts; bounds the parts a receiver keeps. */
export const MIN_FRAGMENT_BYTES = 1024;
/** Largest frame payload before authentication: handshake payloads are small. */
export const MAX_HANDSHAKE_PAYLOAD_BYTES = 512;

export const FrameType = {
  /** Dialer to acceptor: version, dialer nonce, dialer id. */
  hello: 0x01,
  /** Acceptor to dialer: version, acceptor nonce, acceptor proof, acceptor id. */
  challenge: 0x02,
  /** Dialer to acceptor: dialer proof. */
  proof: 0x03,
  /** Acceptor to dialer: the handshake succeeded. Empty payload. */
  welcome: 0x04,
  /** Liveness probe, control lane; payload is a 4-byte sequence number. */
  ping: 0x10,
  /** Reply to a ping with the same 4-byte payload. */
  pong: 0x11,
  /** One whole item of the control lane. */
  control: 0x20,
  /** One whole item of the bulk lane. */
  bulk: 0x30,
  /** A non-final fragment of a bulk item; the next bulk frames continue it. */
  bulkPart: 0x31,
  /** The final fragment of a bulk item. */
  bulkEnd: 0x32,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** The peer broke the protocol; the connection must be closed. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** Writes a frame header at `offset` of `target`. */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  type: FrameType,
  payloadBytes: number,
): void {
  assert(payloadBytes <= MAX_FRAME_PAYLOAD_BYTES, () => `frame payload ${payloadBytes} too large`);
  assert(offset + FRAME_HEADER_BYTES <= target.length, 'frame header outside its buffer');
  target[offset] = payloadBytes >>> 24;
  target[offset + 1] = (payloadBytes >>> 16) & 0xff;
  target[offset + 2] = (payloadBytes >>> 8) & 0xff;
  target[offset + 3] = payloadBytes & 0xff;
  target[offset + 4] = type;
}

/** Returns a new buffer holding one whole frame. */
export function encodeFrame(type: FrameType, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(frame, 0, type, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

export type FrameHandler = (type: number, payload: Buffer) => void;

const NO_FRAME = -1;

/**
 * Cuts a byte stream into frames. A payload that lies within one pushed chunk is passed on as
 * a view of that chunk; one that spans chunks is copied once. The handler runs synchronously
 * inside `push`. While paused, pushed bytes are kept and parsed on `resume`.
 *
 * Invariant: bytes held ≤ FRAME_HEADER_BYTES + maxPayloadBytes + the last chunk's length,
 * because a frame is passed on as soon as it is complete and an oversized one is rejected from
 * its header.
 */
export class FrameDecoder {
  #chunks: Buffer[] = [];
  #firstOffset = 0;
  #bufferedBytes = 0;
  #frameType = 0;
  #payloadBytes = NO_FRAME;
  #paused = false;
  #stopped = false;

  constructor(
    /** Largest payload accepted; may be raised once the peer is authenticated. */
    public maxPayloadBytes: number,
    public handler: FrameHandler,
  ) {}

  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Adds a chunk and passes on every frame it completes. Throws ProtocolError. */
  push(chunk: Buffer): void {
    if (this.#stopped || chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#bufferedBytes += chunk.length;
    this.#parse();
  }

  /** Keeps further frames buffered until `resume`. Takes effect after the current frame. */
  pause(): void {
    this.#paused = true;
  }

  /** Passes on the buffered frames to `handler` and goes on parsing. Throws ProtocolError. */
  resume(handler: FrameHandler): void {
    this.handler = handler;
    this.#paused = false;
    this.#parse();
  }

  /** Drops everything buffered and ignores further input. */
  stop(): void {
    this.#stopped = true;
    this.#chunks = [];
    this.#bufferedBytes = 0;
  }

  #parse(): void {
    while (!this.#stopped && !this.#paused) {
      if (this.#payloadBytes === NO_FRAME) {
        if (this.#bufferedBytes < FRAME_HEADER_BYTES) return;
        this.#readHeader();
      }
      if (this.#bufferedBytes < this.#payloadBytes) return;
      const payload = this.#take(this.#payloadBytes);
      const type = this.#frameType;
      this.#payloadBytes = NO_FRAME;
      this.handler(type, payload);
    }
  }

  #readHeader(): void {
    const header = this.#take(FRAME_HEADER_BYTES);
    const payloadBytes = header.readUInt32BE(0);
    if (payloadBytes > this.maxPayloadBytes) {
      this.stop();
      throw new ProtocolError(
        `frame of ${payloadBytes} bytes exceeds the limit of ${this.maxPayloadBytes} bytes`,
      );
    }
    this.#frameType = header[4]!;
    this.#payloadBytes = payloadBytes;
  }

  /** Removes and returns the next `length` buffered bytes. */
  #take(length: number): Buffer {
    assert(length <= this.#bufferedBytes, 'take past the buffered bytes');
    this.#bufferedBytes -= length;
    const first = this.#chunks[0];
    if (first === undefined) return Buffer.alloc(0);
    const available = first.length - this.#firstOffset;
    if (length <= available) {
      const view = first.subarray(this.#firstOffset, this.#firstOffset + length);
      this.#advanceFirst(length, available);
      return view;
    }
    const copy = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.#chunks[0]!;
      const count = Math.min(length - filled, chunk.length - this.#firstOffset);
      chunk.copy(copy, filled, this.#firstOffset, this.#firstOffset + count);
      filled += count;
      this.#advanceFirst(count, chunk.length - this.#firstOffset);
    }
    return copy;
  }

  #advanceFirst(count: number, available: number): void {
    if (count === available) {
      this.#chunks.shift();
      this.#firstOffset = 0;
    } else {
      this.#firstOffset += count;
    }
  }
}
