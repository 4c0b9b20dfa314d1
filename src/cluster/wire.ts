/**
 * Raft messages on the peer transport. A message travels as a compact array (msgpack encodes
 * it without field names) tagged with the group it belongs to; the decoder checks every field's
 * type, so a malformed or hostile frame is dropped, never stepped into a group.
 *
 * Layout of a group message, version 1:
 *   [1, group, type, from, to, term, logTerm, index, entries, commit, reject, hintIndex,
 *    hintTerm, context, quiesce, readContext, snapshot, transfer]
 * where `entries` is an array of [index, term, entryType, data] and `snapshot` is null or
 * [index, term, voters, learners, votersOutgoing].
 */
import type {
  Entry,
  EntryType,
  Membership,
  Message,
  MessageType,
  SnapshotMeta,
} from '../raft/index.js';

const WIRE_VERSION = 1;

/** Message types by their wire code (the position in this list); append new types at the end. */
export const MESSAGE_TYPES: readonly MessageType[] = [
  'append',
  'append_response',
  'heartbeat',
  'heartbeat_response',
  'vote',
  'vote_response',
  'pre_vote',
  'pre_vote_response',
  'snapshot',
  'snapshot_status',
  'read_index',
  'read_index_response',
  'timeout_now',
];
const MESSAGE_TYPE_CODES = new Map(MESSAGE_TYPES.map((type, code) => [type, code]));
const ENTRY_TYPES: readonly EntryType[] = ['normal', 'config'];
const ENTRY_TYPE_CODES = new Map(ENTRY_TYPES.map((type, code) => [type, code]));
const MAX_NAME_LENGTH = 64;

export interface GroupMessage {
  /** The group's id: `_dbs` or a database's uuid. */
  readonly group: string;
  readonly message: Message;
}

/** Encodes a Raft message of `group` for the transport. */
export function encodeGroupMessage(group: string, message: Message): unknown[] {
  return [
    WIRE_VERSION,
    group,
    MESSAGE_TYPE_CODES.get(message.type),
    message.from,
    message.to,
    message.term,
    message.logTerm,
    message.index,
    message.entries.map((entry) => [
      entry.index,
      entry.term,
      ENTRY_TYPE_CODES.get(entry.type),
      entry.data,
    ]),
    message.commit,
    message.reject,
    message.hintIndex,
    message.hintTerm,
    message.context,
    message.quiesce,
    message.readContext,
    message.snapshot === null ? null : encodeSnapshot(message.snapshot),
    message.transfer === true,
  ];
}

/** Whether a message should travel on the bulk lane (it may be large). */
export function isBulk(message: Message): boolean {
  return message.entries.length > 0 || message.type === 'snapshot';
}

/** Decodes a transport payload into a group message, or returns null when it is malformed. */
export function decodeGroupMessage(payload: unknown): GroupMessage | null {
  if (!Array.isArray(payload) || payload.length !== 18 || payload[0] !== WIRE_VERSION) return null;
  const [, group, typeCode, from, to, term, logTerm, index, entries, commit, reject, hintIndex] =
    payload;
  const [hintTerm, context, quiesce, readContext, snapshot, transfer] = payload.slice(12);
  const type = typeof typeCode === 'number' ? MESSAGE_TYPES[typeCode] : undefined;
  if (type === undefined || !isName(group) || !isName(from) || !isName(to)) return null;
  if (![term, logTerm, index, commit, hintIndex, hintTerm, context].every(isIndex)) return null;
  if (typeof reject !== 'boolean' || typeof quiesce !== 'boolean') return null;
  if (typeof transfer !== 'boolean') return null;
  if (typeof readContext !== 'string' || readContext.length > MAX_NAME_LENGTH * 4) return null;
  const decodedEntries = decodeEntries(entries);
  if (decodedEntries === null) return null;
  const decodedSnapshot = snapshot === null ? null : decodeSnapshot(snapshot);
  if (snapshot !== null && decodedSnapshot === null) return null;
  return {
    group,
    message: {
      type,
      from,
      to,
      term,
      logTerm,
      index,
      entries: decodedEntries,
      commit,
      reject,
      hintIndex,
      hintTerm,
      context,
      quiesce,
      readContext,
      snapshot: decodedSnapshot,
      transfer,
    },
  };
}

function decodeEntries(value: unknown): Entry[] | null {
  if (!Array.isArray(value)) return null;
  const entries: Entry[] = [];
  for (const item of value) {
    if (!Array.isArray(item) || item.length !== 4) return null;
    const [index, term, typeCode, data] = item;
    const type = typeof typeCode === 'number' ? ENTRY_TYPES[typeCode] : undefined;
    if (!isIndex(index) || !isIndex(term) || type === undefined) return null;
    if (!(data instanceof Uint8Array)) return null;
    entries.push({ index, term, type, data });
  }
  return entries;
}

function encodeSnapshot(snapshot: SnapshotMeta): unknown[] {
  const { voters, learners, votersOutgoing } = snapshot.membership;
  return [snapshot.index, snapshot.term, voters, learners, votersOutgoing];
}

function decodeSnapshot(value: unknown): SnapshotMeta | null {
  if (!Array.isArray(value) || value.length !== 5) return null;
  const [index, term, voters, learners, votersOutgoing] = value;
  if (!isIndex(index) || !isIndex(term)) return null;
  if (![voters, learners, votersOutgoing].every(isNameList)) return null;
  const membership: Membership = { voters, learners, votersOutgoing };
  return { index, term, membership };
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isName(value: unknown): value is string {
  return typeof value === 'string' && value.length <= MAX_NAME_LENGTH;
}

function isNameList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length <= 1024 && value.every(isName);
}
