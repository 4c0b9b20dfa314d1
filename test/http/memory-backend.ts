/**
 * A test double of the node for testing the HTTP layer only: `MemoryBackend` implements
 * `HttpBackend` in memory, with no Raft and no files. The real node is tested through the same
 * HTTP layer elsewhere.
 *
 * It behaves like CouchDB 3.x wherever the HTTP tests look, by using src/document for every
 * document rule: interactive edits (`resolveInteractiveEdit`, deterministic revision ids),
 * `new_edits=false` merges, stemming to `revs_limit`, winners, conflicts and deleted documents.
 * Sequences are `<n>-mem`, one per applied update; a write that changes nothing (a replicated
 * revision already present) takes no sequence. `_local/` documents follow CouchDB 3.x: a
 * delete removes them, and their revision is not checked against the stored one.
 *
 * Snapshots copy the document maps (the trees themselves are immutable and shared), so a
 * snapshot never sees a later write. `openSnapshots` counts snapshots not yet closed, so tests
 * can check that every route closes what it opens.
 *
 * Attachments are kept in memory: a stub takes the attachment of that name (and `revpos`) from
 * the leaf the edit extends, else the write gets `missing_stub`; data attachments keep the bytes
 * the HTTP layer prepared. Purge and compaction are not implemented (their routes answer 501
 * here; the engine's test double covers them).
 * Writes that carry a `WriteAuthorization` are checked against the database's `_security` as
 * the leader checks them (src/security/access.ts), and every authorization is recorded in
 * `authorizations`, so tests see what the HTTP layer asked for.
 *
 * Test hooks: `failWrites` makes writes reject with a given error (for 503 unknown outcomes),
 * `failSnapshots` makes snapshots throw (for the 500 path).
 */
import {
  formatDigest,
  missingStub,
  stubMatches,
  type WriteAttachment,
} from '../../src/document/attachments.js';
import { compareCodePoints } from '../../src/document/collate.js';
import {
  formatLocalRev,
  formatRev,
  nextLocalRevCounter,
  type Rev,
} from '../../src/document/rev.js';
import { applyInteractiveEdit, resolveInteractiveEdit } from '../../src/document/rev-edit.js';
import { stem } from '../../src/document/rev-stem.js';
import { mergePath, type RevTree } from '../../src/document/rev-tree.js';
import { findRevision, isDeleted, winner } from '../../src/document/rev-tree-query.js';
import { newRevId } from '../../src/document/revid.js';
import type {
  ChangesSince,
  Consistency,
  DatabaseInfo,
  DatabaseSnapshot,
  DocumentRecord,
  HttpBackend,
  IdRange,
  LeafContent,
  LocalDocumentRecord,
  NodeRaftStatus,
  NodeStats,
  PurgedInfo,
  RaftGroupStatus,
  Seq,
  ServerIdentity,
  StoredAttachment,
  WriteDocument,
  WriteRequest,
  WriteResult,
} from '../../src/http/backend.js';
import {
  checkDatabaseAccess,
  type DefaultSecurity,
  isServerAdmin,
  parseSecurity,
  USERS_DATABASE,
  type WriteAuthorization,
} from '../../src/security/access.js';
import { errors } from '../../src/util/couch-error.js';

const DEFAULT_REVS_LIMIT = 1000;
const DEFAULT_PURGED_INFOS_LIMIT = 1000;
const SEQ_FORM = /^([0-9]+)(?:-mem)?$/;
const EMPTY_SECURITY = Buffer.from('{}');

interface MemoryLeaf extends LeafContent {
  readonly deleted: boolean;
}

interface MemoryDoc {
  readonly id: string;
  readonly tree: RevTree<MemoryLeaf>;
  readonly seq: number;
}

interface MemoryLocal {
  readonly counter: number;
  readonly body: Buffer;
}

interface Waiter {
  readonly after: number;
  resolve(changed: boolean): void;
  reject(error: unknown): void;
}

export function formatSeq(seq: number): Seq {
  return `${seq}-mem`;
}

function parseSeq(seq: Seq): number {
  const match = SEQ_FORM.exec(seq);
  if (match === null) throw errors.invalidSinceSeq(`Invalid sequence: ${seq}`);
  return Number(match[1]);
}

class MemoryDatabase {
  readonly docs = new Map<string, MemoryDoc>();
  /** Document ids by the sequence of their latest update, in sequence order. */
  readonly bySeq = new Map<number, string>();
  readonly locals = new Map<string, MemoryLocal>();
  updateSeq = 0;
  security: Buffer = EMPTY_SECURITY;
  revsLimit = DEFAULT_REVS_LIMIT;
  waiters = new Set<Waiter>();

  record(doc: MemoryDoc): DocumentRecord {
    const top = winner(doc.tree);
    return {
      id: doc.id,
      seq: formatSeq(doc.seq),
      winner: top.rev,
      deleted: top.value.deleted,
      tree: () => doc.tree,
      content: (rev: Rev) => {
        const node = findRevision(doc.tree, rev);
        return node === null || node.children.length > 0 ? null : node.value;
      },
    };
  }

  bumpSeq(doc: Omit<MemoryDoc, 'seq'>): void {
    const old = this.docs.get(doc.id);
    if (old !== undefined) this.bySeq.delete(old.seq);
    this.updateSeq++;
    this.docs.set(doc.id, { ...doc, seq: this.updateSeq });
    this.bySeq.set(this.updateSeq, doc.id);
  }

  notify(): void {
    for (const waiter of this.waiters) {
      if (this.updateSeq > waiter.after) waiter.resolve(true);
    }
  }
}

function inRange(id: string, range: IdRange): boolean {
  const sign = range.descending ? -1 : 1;
  if (range.startId !== undefined && sign * compareCodePoints(id, range.startId) < 0) return false;
  if (range.endId !== undefined) {
    const order = sign * compareCodePoints(id, range.endId);
    if (order > 0 || (order === 0 && !range.inclusiveEnd)) return false;
  }
  return true;
}

class MemorySnapshot implements DatabaseSnapshot {
  private readonly docs: Map<string, MemoryDoc>;
  private readonly bySeq: [number, string][];
  private readonly locals: Map<string, MemoryLocal>;
  private readonly updateSeq: number;
  private readonly securityBytes: Buffer;
  private readonly limit: number;
  private closed = false;

  constructor(
    private readonly database: MemoryDatabase,
    private readonly onClose: () => void,
  ) {
    this.docs = new Map(database.docs);
    this.bySeq = [...database.bySeq.entries()];
    this.locals = new Map(database.locals);
    this.updateSeq = database.updateSeq;
    this.securityBytes = database.security;
    this.limit = database.revsLimit;
  }

  private check(): void {
    if (this.closed) throw new Error('read from a closed snapshot');
  }

  info(): DatabaseInfo {
    this.check();
    let docCount = 0;
    let external = 0;
    for (const doc of this.docs.values()) {
      if (!isDeleted(doc.tree)) docCount++;
      external += winner(doc.tree).value.body.length;
    }
    return {
      docCount,
      docDelCount: this.docs.size - docCount,
      updateSeq: formatSeq(this.updateSeq),
      purgeSeq: formatSeq(0),
      sizes: { file: external, external, active: external },
      cluster: { q: 1, n: 3, w: 2, r: 2 },
      compactRunning: false,
    };
  }

  document(id: string): DocumentRecord | null {
    this.check();
    const doc = this.docs.get(id);
    return doc === undefined ? null : this.database.record(doc);
  }

  *documents(range: IdRange): Iterable<DocumentRecord> {
    this.check();
    const ids = [...this.docs.keys()].sort(compareCodePoints);
    if (range.descending) ids.reverse();
    for (const id of ids) {
      if (!inRange(id, range)) continue;
      const doc = this.docs.get(id)!;
      if (!isDeleted(doc.tree)) yield this.database.record(doc);
    }
  }

  countDocuments(range: IdRange): number {
    let count = 0;
    for (const _ of this.documents(range)) count++;
    return count;
  }

  resolveSince(since: ChangesSince): Seq {
    this.check();
    if (since.kind === 'start') return formatSeq(0);
    if (since.kind === 'now') return formatSeq(this.updateSeq);
    const seq = parseSeq(since.seq);
    if (seq > this.updateSeq)
      throw errors.invalidSinceSeq(`Sequence ${since.seq} is in the future`);
    return formatSeq(seq);
  }

  *changes(since: Seq, descending: boolean): Iterable<DocumentRecord> {
    this.check();
    const after = parseSeq(since);
    const entries = descending ? this.bySeq.slice().reverse() : this.bySeq;
    for (const [seq, id] of entries) {
      if (!descending && seq <= after) continue;
      if (descending && seq <= after) break;
      yield this.database.record(this.docs.get(id)!);
    }
  }

  pendingAfter(seq: Seq, descending: boolean): number {
    const at = parseSeq(seq);
    return this.bySeq.filter(([entry]) => (descending ? entry < at : entry > at)).length;
  }

  localDocument(id: string): LocalDocumentRecord | null {
    this.check();
    const local = this.locals.get(id);
    return local === undefined
      ? null
      : { id, rev: formatLocalRev(local.counter), body: local.body };
  }

  security(): Buffer {
    return this.securityBytes;
  }

  revsLimit(): number {
    return this.limit;
  }

  purgedInfosLimit(): number {
    return DEFAULT_PURGED_INFOS_LIMIT;
  }

  purgedInfos(): PurgedInfo[] {
    return [];
  }

  close(): void {
    if (this.closed) throw new Error('snapshot closed twice');
    this.closed = true;
    this.onClose();
  }
}

export class MemoryBackend implements HttpBackend {
  private readonly databases = new Map<string, MemoryDatabase>();
  openSnapshots = 0;
  /** When set, every write rejects with this error. */
  failWrites: Error | null = null;
  /** What a database with no members allows, as the node's `defaultSecurity`. */
  defaultSecurity: DefaultSecurity = 'admin_only';
  /** Every authorization a write carried, in order. */
  readonly authorizations: WriteAuthorization[] = [];
  /** When set, every snapshot rejects with this error. */
  failSnapshots: Error | null = null;
  /** Consistencies asked for, in order, for tests of `stable=false`. */
  readonly consistencies: Consistency[] = [];

  server(): ServerIdentity {
    return { uuid: '0123456789abcdef0123456789abcdef' };
  }

  async listDatabases(): Promise<string[]> {
    return [...this.databases.keys()].sort(compareCodePoints);
  }

  async createDatabase(name: string): Promise<'created' | 'exists'> {
    if (this.databases.has(name)) return 'exists';
    this.databases.set(name, new MemoryDatabase());
    return 'created';
  }

  async deleteDatabase(name: string): Promise<'deleted' | 'missing'> {
    const database = this.databases.get(name);
    if (database === undefined) return 'missing';
    this.databases.delete(name);
    for (const waiter of database.waiters) waiter.reject(errors.dbNotFound());
    return 'deleted';
  }

  private database(name: string): MemoryDatabase {
    const database = this.databases.get(name);
    if (database === undefined) throw errors.dbNotFound();
    return database;
  }

  async snapshot(db: string, consistency: Consistency): Promise<DatabaseSnapshot> {
    this.consistencies.push(consistency);
    if (this.failSnapshots !== null) throw this.failSnapshots;
    const snapshot = new MemorySnapshot(this.database(db), () => this.openSnapshots--);
    this.openSnapshots++;
    return snapshot;
  }

  /** Checks a write as the leader does; records the authorization. */
  private authorize(db: string, database: MemoryDatabase, authorization?: WriteAuthorization) {
    if (authorization === undefined) return;
    this.authorizations.push(authorization);
    if (isServerAdmin(authorization.user)) return;
    if (authorization.access === 'user_document') {
      if (db === USERS_DATABASE) return;
      throw errors.forbidden('user_document outside _users');
    }
    const denied = checkDatabaseAccess(
      authorization.user,
      parseSecurity(database.security),
      authorization.access,
      this.defaultSecurity,
    );
    if (denied !== null) throw denied;
  }

  async write(
    db: string,
    request: WriteRequest,
    authorization?: WriteAuthorization,
  ): Promise<WriteResult[]> {
    const database = this.database(db);
    this.authorize(db, database, authorization);
    if (this.failWrites !== null) throw this.failWrites;
    const results = request.docs.map((doc) => {
      if (doc.kind === 'local') return writeLocal(database, doc);
      return request.newEdits ? writeInteractive(database, doc) : writeReplicated(database, doc);
    });
    database.notify();
    return results;
  }

  async setRevsLimit(db: string, limit: number, authorization?: WriteAuthorization) {
    const database = this.database(db);
    this.authorize(db, database, authorization);
    database.revsLimit = limit;
  }

  async setSecurity(db: string, security: Buffer, authorization?: WriteAuthorization) {
    const database = this.database(db);
    this.authorize(db, database, authorization);
    database.security = security;
  }

  waitForChange(db: string, since: Seq, timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    const database = this.database(db);
    const after = parseSeq(since);
    if (database.updateSeq > after) return Promise.resolve(true);
    if (signal.aborted) return Promise.resolve(false);
    return new Promise((resolve, reject) => {
      const finish = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        database.waiters.delete(waiter);
      };
      const waiter: Waiter = {
        after,
        resolve: (changed) => {
          finish();
          resolve(changed);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      };
      const onAbort = () => waiter.resolve(false);
      const timer = setTimeout(() => waiter.resolve(false), timeoutMs);
      signal.addEventListener('abort', onAbort);
      database.waiters.add(waiter);
    });
  }

  /** Number of feeds waiting for changes, across databases. */
  get waiterCount(): number {
    let count = 0;
    for (const database of this.databases.values()) count += database.waiters.size;
    return count;
  }

  async raftStatus(db: string): Promise<RaftGroupStatus> {
    const database = this.database(db);
    return raftStatusOf(database.updateSeq);
  }

  async transferLeader(db: string, to: string): Promise<string> {
    this.database(db);
    if (to !== 'n1') throw errors.badRequest(`${to} is not a member of this group`);
    return to;
  }

  async membership(): Promise<{ all_nodes: string[]; cluster_nodes: string[] }> {
    return { all_nodes: ['n1'], cluster_nodes: ['n1'] };
  }

  async listNodes(): Promise<{ name: string; peer: string; http: string }[]> {
    return [{ name: 'n1', peer: '127.0.0.1:6984', http: '127.0.0.1:5984' }];
  }

  async addNode(): Promise<'added' | 'present'> {
    return 'present';
  }

  async removeNode(): Promise<'removed' | 'missing'> {
    return 'missing';
  }

  async faults(): Promise<null> {
    return null;
  }

  async nodeRaftStatus(): Promise<NodeRaftStatus> {
    const groups = [...this.databases.keys()].map((db) => ({ db, role: 'leader' as const }));
    return { ...raftStatusOf(this.databases.size), groups };
  }

  async nodeStats(): Promise<NodeStats> {
    return {
      openDatabaseFiles: this.databases.size,
      raftGroups: this.databases.size + 1,
      details: {},
    };
  }
}

function raftStatusOf(index: number): RaftGroupStatus {
  return {
    node: 'memory',
    role: 'leader',
    term: 1,
    leader: 'memory',
    commit_index: index,
    applied_index: index,
    first_index: 1,
    last_index: index,
    members: ['memory'],
    hash_chain: '00',
    snapshots_sent: 0,
    snapshots_received: 0,
    progress: {},
  };
}

function memoryAttachment(attachment: Extract<WriteAttachment, { kind: 'data' }>, revpos: number) {
  const stored: StoredAttachment = {
    name: attachment.name,
    contentType: attachment.contentType,
    revpos: attachment.revpos ?? revpos,
    digest: formatDigest(attachment.digest),
    length: attachment.length,
    encoding: attachment.encoding,
    encodedLength: attachment.data.length,
    read: (start, end) => attachment.data.subarray(start, end),
  };
  return stored;
}

/** Resolves a write's attachments against the leaf it extends; a name when a stub misses. */
function resolveAttachments(
  doc: WriteDocument,
  parent: MemoryLeaf | null,
  revpos: number,
): StoredAttachment[] | string {
  const resolved: StoredAttachment[] = [];
  for (const attachment of doc.attachments ?? []) {
    if (attachment.kind === 'data') {
      resolved.push(memoryAttachment(attachment, revpos));
      continue;
    }
    const found = parent?.attachments.find((stored) => stubMatches(attachment, stored));
    if (found === undefined) return attachment.name;
    resolved.push(found);
  }
  return resolved;
}

function leafOf(doc: WriteDocument, attachments: readonly StoredAttachment[]): MemoryLeaf {
  return { deleted: doc.deleted, body: doc.body, attachments };
}

function missingStubResult(id: string, name: string): WriteResult {
  const error = missingStub(id, name);
  return { ok: false, id, error: error.error, reason: error.reason };
}

function leafAt(tree: RevTree<MemoryLeaf>, rev: Rev | null): MemoryLeaf | null {
  if (rev === null) return null;
  const node = findRevision(tree, rev);
  return node === null || node.children.length > 0 ? null : node.value;
}

function conflictResult(id: string): WriteResult {
  return { ok: false, id, error: 'conflict', reason: 'Document update conflict.' };
}

function writeInteractive(database: MemoryDatabase, doc: WriteDocument): WriteResult {
  const tree = database.docs.get(doc.id)?.tree ?? [];
  const target = resolveInteractiveEdit(tree, doc.revisions, doc.deleted);
  if (target.kind === 'conflict') return conflictResult(doc.id);
  const newPos = target.parent === null ? 1 : target.parent.pos + 1;
  const attachments = resolveAttachments(doc, leafAt(tree, target.parent), newPos);
  if (typeof attachments === 'string') return missingStubResult(doc.id, attachments);
  const revId = newRevId({
    deleted: doc.deleted,
    parent: target.parent,
    body: doc.body,
    attachments: attachments.map((attachment) => ({
      name: attachment.name,
      contentType: attachment.contentType,
      digest: attachment.digest,
    })),
  });
  const applied = applyInteractiveEdit(tree, target, revId, leafOf(doc, attachments));
  if (applied.kind === 'conflict') return conflictResult(doc.id);
  database.bumpSeq({ id: doc.id, tree: stem(applied.tree, database.revsLimit) });
  return { ok: true, id: doc.id, rev: formatRev(applied.rev) };
}

function writeReplicated(database: MemoryDatabase, doc: WriteDocument): WriteResult {
  const tree = database.docs.get(doc.id)?.tree ?? [];
  const parentRev =
    doc.revisions.ids.length > 1
      ? { pos: doc.revisions.start - 1, id: doc.revisions.ids[1]! }
      : null;
  const attachments = resolveAttachments(doc, leafAt(tree, parentRev), doc.revisions.start);
  if (typeof attachments === 'string') return missingStubResult(doc.id, attachments);
  const merged = mergePath(tree, doc.revisions, leafOf(doc, attachments));
  const rev = formatRev({ pos: doc.revisions.start, id: doc.revisions.ids[0]! });
  if (merged.tree !== tree) {
    database.bumpSeq({ id: doc.id, tree: stem(merged.tree, database.revsLimit) });
  }
  return { ok: true, id: doc.id, rev };
}

function writeLocal(database: MemoryDatabase, doc: WriteDocument): WriteResult {
  const counter = nextLocalRevCounter(doc.revisions, doc.deleted);
  if (counter === null)
    return { ok: false, id: doc.id, error: 'bad_request', reason: 'Invalid rev format' };
  if (doc.deleted) {
    if (!database.locals.has(doc.id)) {
      return { ok: false, id: doc.id, error: 'not_found', reason: 'missing' };
    }
    database.locals.delete(doc.id);
  } else {
    database.locals.set(doc.id, { counter, body: doc.body });
  }
  return { ok: true, id: doc.id, rev: formatLocalRev(counter) };
}
