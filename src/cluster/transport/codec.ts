/**
 * Items: what a control or bulk frame (or a reassembled run of bulk fragments) carries. An
 * item is one MessagePack array whose first element is its kind:
 *   [0, body]                a message for the message handler
 *   [1, requestId, body]     a request for the request handler
 *   [2, requestId, body]     the reply to a request
 *   [3, requestId, reason]   a request that failed at the receiver (reason is a string)
 * Request ids are non-negative safe integers chosen by the requester, unique per transport.
 *
 * Encoding uses msgpackr with `useRecords: false`: no shared record structures, whose state
 * would have to match on both ends and would desync across reconnects. Binary data travels as
 * Uint8Array (decoded as Buffer, copied out of the socket chunk). Maps decode as plain objects.
 * Every packed item keeps FRAME_HEADER_BYTES of free space at its start, so a whole-item frame
 * needs no copy: the header is written into that space.
 */
import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { FRAME_HEADER_BYTES, ProtocolError } from './frame.js';

export const ItemKind = {
  message: 0,
  request: 1,
  response: 2,
  failure: 3,
} as const;

export type Item =
  | readonly [kind: typeof ItemKind.message, body: unknown]
  | readonly [kind: typeof ItemKind.request, requestId: number, body: unknown]
  | readonly [kind: typeof ItemKind.response, requestId: number, body: unknown]
  | readonly [kind: typeof ItemKind.failure, requestId: number, reason: string];

const packr = new Packr({ useRecords: false, copyBuffers: true });
const PACK_WITH_HEADER_SPACE = RESERVE_START_SPACE | FRAME_HEADER_BYTES;

/**
 * A packed item: `bytes` starts with FRAME_HEADER_BYTES of free space, then the MessagePack
 * encoding. `bytes` may be a view into a buffer shared with other packed items.
 */
export type PackedItem = Buffer;

/** Size of the item's encoding, without the header space. */
export function itemBytes(packed: PackedItem): number {
  return packed.length - FRAME_HEADER_BYTES;
}

export function packMessage(body: unknown): PackedItem {
  return packr.pack([ItemKind.message, body], PACK_WITH_HEADER_SPACE);
}

export function packRequest(requestId: number, body: unknown): PackedItem {
  return packr.pack([ItemKind.request, requestId, body], PACK_WITH_HEADER_SPACE);
}

export function packResponse(requestId: number, body: unknown): PackedItem {
  return packr.pack([ItemKind.response, requestId, body], PACK_WITH_HEADER_SPACE);
}

export function packFailure(requestId: number, reason: string): PackedItem {
  return packr.pack([ItemKind.failure, requestId, reason], PACK_WITH_HEADER_SPACE);
}

/** Decodes one item. Throws ProtocolError when the bytes are not a valid item. */
export function unpackItem(payload: Buffer): Item {
  let value: unknown;
  try {
    value = packr.unpack(payload);
  } catch (error) {
    // msgpackr's messages may embed the decoded data; keep the log line short.
    const message = error instanceof Error ? error.message.slice(0, 80) : 'unknown error';
    throw new ProtocolError(`invalid MessagePack item: ${message}`);
  }
  if (!Array.isArray(value)) throw new ProtocolError('item is not an array');
  const kind = value[0];
  if (kind === ItemKind.message) {
    if (value.length !== 2) throw new ProtocolError('message item needs 2 elements');
    return value as unknown as Item;
  }
  if (kind !== ItemKind.request && kind !== ItemKind.response && kind !== ItemKind.failure) {
    throw new ProtocolError(`unknown item kind ${String(kind)}`);
  }
  if (value.length !== 3) throw new ProtocolError(`item of kind ${kind} needs 3 elements`);
  const requestId = value[1];
  if (typeof requestId !== 'number' || !Number.isSafeInteger(requestId) || requestId < 0) {
    throw new ProtocolError('invalid request id');
  }
  if (kind === ItemKind.failure && typeof value[2] !== 'string') {
    throw new ProtocolError('failure reason is not a string');
  }
  return value as unknown as Item;
}
