/**
 * The engine's public API in one import: the database file and its commit (`DatabaseFile`,
 * `stage`), commands and their encoding, outcomes and the hash chain, read snapshots and the
 * reads built on them, sequences, online compaction, snapshots by shipping the file, and
 * `LocalDatabase` for standalone use. Each module's header documents its part;
 * docs/file-format.md describes the bytes.
 */
export * from './commands.js';
export {
  COMPACTION_DELAY_ENV,
  CompactionAbortedError,
  type CompactionPhase,
  type CompactionProgress,
  type CompactionResult,
  type CompactOptions,
  unixSeconds,
} from './compaction.js';
export {
  type ApplyItem,
  type CreateOptions,
  DatabaseFile,
  DEFAULT_PURGED_INFOS_LIMIT,
  DEFAULT_REQUEST_RETENTION,
  DEFAULT_REVS_LIMIT,
  type DurableSource,
  type LogExtent,
  type OpenOptions,
  type StageBatch,
  type StageResult,
  type UpdateListener,
} from './database-file.js';
export type { DocInfo, RecordRef, SeqRow, StoredLeaf } from './doc-info.js';
export { EngineFormatError } from './header.js';
export * from './local-database.js';
export {
  type AppliedEntry,
  decodeOutcome,
  type EntryOutcome,
  encodeOutcome,
  extendHashChain,
  INITIAL_HASH_CHAIN,
} from './outcome.js';
export * from './read-document.js';
export * from './read-lists.js';
export { formatSeq, parseSeq, SEQ_OPAQUE_DIGITS, seqOpaque } from './seq.js';
export { EngineSnapshot, type StoredDocument } from './snapshot.js';
export {
  type DurablePin,
  type InstallOptions,
  installSnapshot,
  pinDurable,
  StaleSnapshotError,
} from './snapshot-file.js';
export type { LogPosition } from './stored-entry.js';
