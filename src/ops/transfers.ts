/**
 * `SnapshotTransfers`: the snapshot transfers this node is receiving now, for
 * `_active_tasks` and the cluster status. The node registers a transfer when it starts
 * fetching a leader's database file and ends it when the fetch settles, whatever the outcome.
 *
 * Tasks use CouchDB's `_active_tasks` members (`pid` as a string, Unix-second times,
 * `progress` in percent) with the type `raft_snapshot`, which Fauxton lists under "All".
 */

const MS_PER_SECOND = 1000;
const PERCENT = 100;

/** A snapshot transfer in CouchDB's `_active_tasks` shape. */
export interface SnapshotTask {
  readonly type: 'raft_snapshot';
  readonly pid: string;
  readonly node: string;
  readonly database: string;
  /** The node the file comes from: the group's leader when the transfer started. */
  readonly source: string;
  readonly progress: number;
  readonly bytes_done: number;
  /** The file's size, 0 until the first chunk arrives. */
  readonly total_bytes: number;
  readonly process_status: 'running';
  readonly started_on: number;
  readonly updated_on: number;
}

/** The handle of one transfer, for the fetch to report progress and its end. */
export interface TransferHandle {
  update(bytesDone: number, totalBytes: number): void;
  end(): void;
}

interface Transfer {
  readonly id: number;
  readonly database: string;
  readonly source: string;
  readonly startedAt: number;
  updatedAt: number;
  bytesDone: number;
  totalBytes: number;
}

export class SnapshotTransfers {
  readonly #active = new Set<Transfer>();
  #nextId = 1;

  constructor(readonly now: () => number = Date.now) {}

  begin(database: string, source: string): TransferHandle {
    const startedAt = this.now();
    const transfer: Transfer = {
      id: this.#nextId++,
      database,
      source,
      startedAt,
      updatedAt: startedAt,
      bytesDone: 0,
      totalBytes: 0,
    };
    this.#active.add(transfer);
    return {
      update: (bytesDone, totalBytes) => {
        transfer.bytesDone = bytesDone;
        transfer.totalBytes = Number.isFinite(totalBytes) ? totalBytes : 0;
        transfer.updatedAt = this.now();
      },
      end: () => {
        this.#active.delete(transfer);
      },
    };
  }

  get size(): number {
    return this.#active.size;
  }

  /** Returns the running transfers as `_active_tasks` entries of node `node`. */
  tasks(node: string): SnapshotTask[] {
    return [...this.#active].map((transfer) => ({
      type: 'raft_snapshot',
      pid: `<snapshot.${transfer.id}>`,
      node,
      database: transfer.database,
      source: transfer.source,
      progress:
        transfer.totalBytes > 0
          ? Math.floor((PERCENT * transfer.bytesDone) / transfer.totalBytes)
          : 0,
      bytes_done: transfer.bytesDone,
      total_bytes: transfer.totalBytes,
      process_status: 'running',
      started_on: Math.floor(transfer.startedAt / MS_PER_SECOND),
      updated_on: Math.floor(transfer.updatedAt / MS_PER_SECOND),
    }));
  }
}
