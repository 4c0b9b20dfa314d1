/**
 * `countingSnapshot`: a `DatabaseSnapshot` that counts the documents read through it, for
 * CouchDB's `couchdb_database_reads_total` (one per document returned by a lookup or an
 * `_all_docs` row). Everything else passes through unchanged.
 */
import type {
  ChangesSince,
  DatabaseInfo,
  DatabaseSnapshot,
  DocumentRecord,
  IdRange,
  LocalDocumentRecord,
  PurgedInfo,
  Seq,
} from '../http/backend.js';

/** Receives the number of documents read. */
export type ReadObserver = (documents: number) => void;

class CountingSnapshot implements DatabaseSnapshot {
  constructor(
    readonly inner: DatabaseSnapshot,
    readonly observe: ReadObserver,
  ) {}

  info(): DatabaseInfo {
    return this.inner.info();
  }

  document(id: string): DocumentRecord | null {
    const record = this.inner.document(id);
    if (record !== null) this.observe(1);
    return record;
  }

  *documents(range: IdRange): Iterable<DocumentRecord> {
    for (const record of this.inner.documents(range)) {
      this.observe(1);
      yield record;
    }
  }

  countDocuments(range: IdRange): number {
    return this.inner.countDocuments(range);
  }

  resolveSince(since: ChangesSince): Seq {
    return this.inner.resolveSince(since);
  }

  changes(since: Seq, descending: boolean): Iterable<DocumentRecord> {
    return this.inner.changes(since, descending);
  }

  pendingAfter(seq: Seq, descending: boolean): number {
    return this.inner.pendingAfter(seq, descending);
  }

  localDocument(id: string): LocalDocumentRecord | null {
    return this.inner.localDocument(id);
  }

  security(): Buffer {
    return this.inner.security();
  }

  revsLimit(): number {
    return this.inner.revsLimit();
  }

  purgedInfosLimit(): number {
    return this.inner.purgedInfosLimit();
  }

  purgedInfos(): PurgedInfo[] {
    return this.inner.purgedInfos();
  }

  close(): void {
    this.inner.close();
  }
}

/** Wraps `inner` so that each document read through it is reported to `observe`. */
export function countingSnapshot(inner: DatabaseSnapshot, observe: ReadObserver): DatabaseSnapshot {
  return new CountingSnapshot(inner, observe);
}
