/**
 * The clients' workload: which documents they touch and which operation comes next.
 *
 * Documents come from a shared pool of `activeKeys` ids. Each id takes at most
 * `maxOpsPerDocument` client operations and is then retired and replaced by a fresh id, which
 * bounds every document's history so that the linearizability search stays tractable while
 * the run can last as long as wanted. A small pool makes clients collide on documents, which is
 * the concurrency the check needs.
 *
 * A client remembers, per document, the revisions it saw with their tokens (the unique value
 * each write carries). Updates and deletes send the newest of them most of the time and an
 * older one sometimes, so that compare-and-set fails as well as succeeds; a client that knows
 * no live revision creates the document instead.
 */
import type { SimRandom } from '../sim/random.js';

/** Probability of each kind of request; the rest are single-document writes. */
export const WORKLOAD_MIX = {
  read: 0.3,
  bulk: 0.12,
  changes: 0.05,
  /** A create whatever the client believes, which conflicts when the document exists. */
  blindCreate: 0.03,
} as const;
/** Share of updates and deletes that send an older revision than the newest seen. */
const STALE_REVISION_SHARE = 0.15;
/** Share of writes on a live document that delete it. */
const DELETE_SHARE = 0.2;
const BULK_MIN_DOCS = 2;
const BULK_MAX_DOCS = 3;
/** Share of writes to a document the client has never seen that become a read of it. */
const UNSEEN_READ_SHARE = 0.5;
/** Revisions remembered per document per client. */
const REMEMBERED_REVISIONS = 4;

export interface KnownRevision {
  readonly token: string;
  readonly rev: string;
}

export type DocumentWrite =
  | { readonly op: 'create'; readonly key: string; readonly value: string }
  | {
      readonly op: 'update';
      readonly key: string;
      readonly expected: KnownRevision;
      readonly value: string;
    }
  | { readonly op: 'delete'; readonly key: string; readonly expected: KnownRevision };

export type PlannedRequest =
  | { readonly kind: 'read'; readonly key: string }
  | { readonly kind: 'write'; readonly write: DocumentWrite }
  | { readonly kind: 'bulk'; readonly writes: readonly DocumentWrite[] }
  | { readonly kind: 'changes'; readonly keys: readonly string[] };

export class KeyPool {
  readonly #active: string[] = [];
  readonly #counts = new Map<string, number>();
  #next = 0;

  constructor(
    activeKeys: number,
    readonly maxOpsPerDocument: number,
  ) {
    for (let i = 0; i < activeKeys; i++) this.#active.push(this.#fresh());
  }

  /** Every id ever used, in order of first use. */
  get allKeys(): string[] {
    return [...this.#counts.keys()];
  }

  /** The ids in use now. */
  activeKeys(): readonly string[] {
    return [...this.#active];
  }

  /** Takes `count` distinct active ids for one request each and retires the ones used up. */
  take(random: SimRandom, count: number): string[] {
    const slots = new Set<number>();
    while (slots.size < Math.min(count, this.#active.length)) {
      slots.add(random.int(0, this.#active.length - 1));
    }
    const keys = [...slots].map((slot) => this.#active[slot]!);
    for (const slot of slots) {
      const key = this.#active[slot]!;
      const used = (this.#counts.get(key) ?? 0) + 1;
      this.#counts.set(key, used);
      if (used >= this.maxOpsPerDocument) this.#active[slot] = this.#fresh();
    }
    return keys;
  }

  #fresh(): string {
    const key = `d${String(this.#next++).padStart(5, '0')}`;
    this.#counts.set(key, 0);
    return key;
  }
}

/** What one client believes about documents, from its own requests. */
export class ClientMemory {
  readonly #documents = new Map<string, { revisions: KnownRevision[]; live: boolean }>();
  #tokens = 0;

  constructor(readonly clientName: string) {}

  /** A token no other write of the run carries. */
  nextToken(): string {
    return `${this.clientName}-${++this.#tokens}`;
  }

  /** Records a live revision seen (read or written): the current one as far as we know. */
  sawLive(key: string, revision: KnownRevision): void {
    const known = this.#document(key);
    known.live = true;
    if (known.revisions.at(-1)?.rev === revision.rev) return;
    known.revisions.push(revision);
    if (known.revisions.length > REMEMBERED_REVISIONS) known.revisions.shift();
  }

  /** Whether the client has seen the document at all (live, missing or deleted). */
  knows(key: string): boolean {
    return this.#documents.has(key);
  }

  /** Records that the document was seen missing or deleted. */
  sawMissing(key: string): void {
    this.#document(key).live = false;
  }

  /**
   * The revision to send for a compare-and-set, or null to create instead. A document seen
   * missing still gets an old revision now and then, which must conflict.
   */
  revisionFor(random: SimRandom, key: string): KnownRevision | null {
    const known = this.#documents.get(key);
    if (known === undefined || known.revisions.length === 0) return null;
    const { revisions } = known;
    if (!known.live) return random.chance(STALE_REVISION_SHARE) ? random.pick(revisions) : null;
    if (revisions.length > 1 && random.chance(STALE_REVISION_SHARE)) {
      return revisions[random.int(0, revisions.length - 2)]!;
    }
    return revisions.at(-1)!;
  }

  #document(key: string): { revisions: KnownRevision[]; live: boolean } {
    let known = this.#documents.get(key);
    if (known === undefined) {
      known = { revisions: [], live: false };
      this.#documents.set(key, known);
    }
    return known;
  }
}

/** Plans a client's next request. */
export function planRequest(
  random: SimRandom,
  pool: KeyPool,
  memory: ClientMemory,
): PlannedRequest {
  const roll = random.next();
  let threshold = WORKLOAD_MIX.read;
  if (roll < threshold) return { kind: 'read', key: pool.take(random, 1)[0]! };
  threshold += WORKLOAD_MIX.changes;
  if (roll < threshold) return { kind: 'changes', keys: pool.activeKeys() };
  threshold += WORKLOAD_MIX.bulk;
  if (roll < threshold) {
    const keys = pool.take(random, random.int(BULK_MIN_DOCS, BULK_MAX_DOCS));
    return { kind: 'bulk', writes: keys.map((key) => planWrite(random, key, memory)) };
  }
  threshold += WORKLOAD_MIX.blindCreate;
  const key = pool.take(random, 1)[0]!;
  if (roll < threshold) {
    return { kind: 'write', write: { op: 'create', key, value: memory.nextToken() } };
  }
  // A client that has never seen the document looks before it writes, most of the time.
  if (!memory.knows(key) && random.chance(UNSEEN_READ_SHARE)) return { kind: 'read', key };
  return { kind: 'write', write: planWrite(random, key, memory) };
}

function planWrite(random: SimRandom, key: string, memory: ClientMemory): DocumentWrite {
  const expected = memory.revisionFor(random, key);
  if (expected === null) return { op: 'create', key, value: memory.nextToken() };
  if (random.chance(DELETE_SHARE)) return { op: 'delete', key, expected };
  return { op: 'update', key, expected, value: memory.nextToken() };
}
