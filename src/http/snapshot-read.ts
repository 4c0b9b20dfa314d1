/**
 * One read from a database snapshot on behalf of the security layer, where a missing database
 * is an expected outcome rather than an error to send.
 */
import { isCouchError } from '../util/couch-error.js';
import type { Consistency, DatabaseSnapshot, HttpBackend } from './backend.js';

/** Runs `read` on a snapshot of `db` and closes it; returns null when `db` does not exist. */
export async function readIfExists<T>(
  backend: HttpBackend,
  db: string,
  consistency: Consistency,
  read: (snapshot: DatabaseSnapshot) => T,
): Promise<T | null> {
  let snapshot: DatabaseSnapshot;
  try {
    snapshot = await backend.snapshot(db, consistency);
  } catch (error) {
    if (isCouchError(error) && error.status === 404) return null;
    throw error;
  }
  try {
    return read(snapshot);
  } finally {
    snapshot.close();
  }
}
