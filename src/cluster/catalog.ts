/**
 * The catalog of databases, read from the `_dbs` system database.
 *
 * `_dbs` is an ordinary Divan database replicated by its own Raft group over every node. Each
 * database is a document whose id is the database's name and whose body is
 * `{"uuid": "<32 hex>", "candidate": "<node>"}`: the uuid names the database's Raft group and
 * file (an incarnation: a database deleted and created again gets a new uuid), the candidate is
 * the node that campaigns first when the group is created. Deleting a database deletes the
 * document, leaving a tombstone whose body keeps the uuid, so every node knows that incarnation
 * is gone and drops its messages.
 *
 * A system database (`_users`, `_replicator`, ...) cannot use its name as the id, because
 * document ids starting with `_` are reserved. Its id is `system:<name>` (see `catalogDocId`).
 *
 * Cluster members are documents of `_dbs` too, with ids `node:<name>` (never a legal database
 * name, because of the colon) and bodies `{"peer": "host:port", "http": "host:port"}`. The set
 * of member documents is the membership every Raft group converges to.
 *
 * The catalog follows `_dbs`'s changes feed: `refresh` reads the changes since the last refresh
 * and reports which incarnations appeared and which went away, and whether members changed.
 */
import type { EngineSnapshot } from '../engine/index.js';
import type { DocumentRecord, Seq } from '../http/backend.js';

export interface DatabaseEntry {
  readonly name: string;
  readonly uuid: string;
  readonly candidate: string;
  /** The voters the group starts with; empty in documents written before it was recorded. */
  readonly voters: readonly string[];
}

/** A member node of the cluster, as its `node:<name>` document records it. */
export interface NodeEntry {
  readonly name: string;
  readonly peer: string;
  readonly http: string;
}

export interface CatalogChanges {
  readonly created: readonly DatabaseEntry[];
  readonly deleted: readonly DatabaseEntry[];
  readonly nodesChanged: boolean;
}

/** The `_dbs` document id of member `name`. */
export function nodeDocId(name: string): string {
  return `${NODE_PREFIX}${name}`;
}

const NODE_PREFIX = 'node:';
const SYSTEM_PREFIX = 'system:';

/** Returns the `_dbs` document id of database `name`. */
export function catalogDocId(name: string): string {
  return name.startsWith('_') ? `${SYSTEM_PREFIX}${name}` : name;
}

/** Returns the database name of a `_dbs` document id that is not a member's. */
function databaseName(id: string): string {
  return id.startsWith(SYSTEM_PREFIX) ? id.slice(SYSTEM_PREFIX.length) : id;
}

const UUID_PATTERN = /^[0-9a-f]{32}$/;

export class Catalog {
  readonly #byName = new Map<string, DatabaseEntry>();
  readonly #byUuid = new Map<string, DatabaseEntry>();
  readonly #deletedUuids = new Set<string>();
  readonly #nodes = new Map<string, NodeEntry>();
  #since: Seq | null = null;

  /** The cluster's member nodes, by name. */
  get nodes(): ReadonlyMap<string, NodeEntry> {
    return this.#nodes;
  }

  get(name: string): DatabaseEntry | undefined {
    return this.#byName.get(name);
  }

  byUuid(uuid: string): DatabaseEntry | undefined {
    return this.#byUuid.get(uuid);
  }

  isDeleted(uuid: string): boolean {
    return this.#deletedUuids.has(uuid);
  }

  /** Every database name in bytewise order of its UTF-8 encoding. */
  names(): string[] {
    return [...this.#byName.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  get size(): number {
    return this.#byName.size;
  }

  /** Reads `_dbs` changes since the previous refresh and applies them to the catalog. */
  refresh(snapshot: EngineSnapshot): CatalogChanges {
    const since = this.#since ?? snapshot.resolveSince({ kind: 'start' });
    const created: DatabaseEntry[] = [];
    const deleted: DatabaseEntry[] = [];
    let nodesChanged = false;
    let last = since;
    for (const record of snapshot.changes(since, false)) {
      last = record.seq;
      if (record.id.startsWith(NODE_PREFIX)) {
        nodesChanged =
          this.#refreshNode(record.id.slice(NODE_PREFIX.length), record) || nodesChanged;
        continue;
      }
      const name = databaseName(record.id);
      const content = record.content(record.winner);
      const fields = content === null ? null : parseBody(content.body);
      const previous = this.#byName.get(name);
      if (record.deleted || fields === null) {
        if (previous !== undefined) {
          this.#remove(previous);
          deleted.push(previous);
        }
        if (fields !== null) this.#deletedUuids.add(fields.uuid);
        continue;
      }
      if (previous !== undefined && previous.uuid === fields.uuid) continue;
      if (previous !== undefined) {
        this.#remove(previous);
        deleted.push(previous);
      }
      const entry = {
        name,
        uuid: fields.uuid,
        candidate: fields.candidate,
        voters: fields.voters,
      };
      this.#byName.set(entry.name, entry);
      this.#byUuid.set(entry.uuid, entry);
      created.push(entry);
    }
    this.#since = last;
    return { created, deleted, nodesChanged };
  }

  #refreshNode(name: string, record: DocumentRecord): boolean {
    const content = record.deleted ? null : record.content(record.winner);
    const entry = content === null ? null : parseNodeBody(name, content.body);
    const previous = this.#nodes.get(name);
    if (entry === null) return this.#nodes.delete(name);
    this.#nodes.set(name, entry);
    return previous === undefined || previous.peer !== entry.peer || previous.http !== entry.http;
  }

  #remove(entry: DatabaseEntry): void {
    this.#byName.delete(entry.name);
    this.#byUuid.delete(entry.uuid);
    this.#deletedUuids.add(entry.uuid);
  }
}

/** The body of a database's `_dbs` document. */
export function catalogBody(uuid: string, candidate: string, voters: readonly string[]): Buffer {
  return Buffer.from(JSON.stringify({ uuid, candidate, voters }));
}

/** The body of a member's `_dbs` document. */
export function nodeBody(peer: string, http: string): Buffer {
  return Buffer.from(JSON.stringify({ peer, http }));
}

function parseBody(body: Buffer): { uuid: string; candidate: string; voters: string[] } | null {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if (typeof parsed.uuid !== 'string' || !UUID_PATTERN.test(parsed.uuid)) return null;
    const candidate = typeof parsed.candidate === 'string' ? parsed.candidate : '';
    const voters = Array.isArray(parsed.voters)
      ? parsed.voters.filter((voter): voter is string => typeof voter === 'string')
      : [];
    return { uuid: parsed.uuid, candidate, voters };
  } catch {
    return null;
  }
}

function parseNodeBody(name: string, body: Buffer): NodeEntry | null {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    if (typeof parsed.peer !== 'string' || typeof parsed.http !== 'string') return null;
    return { name, peer: parsed.peer, http: parsed.http };
  } catch {
    return null;
  }
}
