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
 * The catalog follows `_dbs`'s changes feed: `refresh` reads the changes since the last refresh
 * and reports which incarnations appeared and which went away.
 */
import type { EngineSnapshot } from '../engine/index.js';
import type { Seq } from '../http/backend.js';

export interface DatabaseEntry {
  readonly name: string;
  readonly uuid: string;
  readonly candidate: string;
}

export interface CatalogChanges {
  readonly created: readonly DatabaseEntry[];
  readonly deleted: readonly DatabaseEntry[];
}

const UUID_PATTERN = /^[0-9a-f]{32}$/;

export class Catalog {
  readonly #byName = new Map<string, DatabaseEntry>();
  readonly #byUuid = new Map<string, DatabaseEntry>();
  readonly #deletedUuids = new Set<string>();
  #since: Seq | null = null;

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
    let last = since;
    for (const record of snapshot.changes(since, false)) {
      last = record.seq;
      const content = record.content(record.winner);
      const fields = content === null ? null : parseBody(content.body);
      const previous = this.#byName.get(record.id);
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
      const entry = { name: record.id, uuid: fields.uuid, candidate: fields.candidate };
      this.#byName.set(entry.name, entry);
      this.#byUuid.set(entry.uuid, entry);
      created.push(entry);
    }
    this.#since = last;
    return { created, deleted };
  }

  #remove(entry: DatabaseEntry): void {
    this.#byName.delete(entry.name);
    this.#byUuid.delete(entry.uuid);
    this.#deletedUuids.add(entry.uuid);
  }
}

/** The body of a `_dbs` document. */
export function catalogBody(uuid: string, candidate: string): Buffer {
  return Buffer.from(JSON.stringify({ uuid, candidate }));
}

function parseBody(body: Buffer): { uuid: string; candidate: string } | null {
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { uuid?: unknown; candidate?: unknown };
    if (typeof parsed.uuid !== 'string' || !UUID_PATTERN.test(parsed.uuid)) return null;
    const candidate = typeof parsed.candidate === 'string' ? parsed.candidate : '';
    return { uuid: parsed.uuid, candidate };
  } catch {
    return null;
  }
}
