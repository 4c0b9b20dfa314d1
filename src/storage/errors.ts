/**
 * Typed errors of the storage layer. These are expected outcomes that callers can handle
 * (a damaged file, a failed disk, a name already taken); a broken invariant is an
 * `InvariantError` from `src/util/assert.ts` instead.
 */

/** Base class, so callers can tell storage failures from bugs. */
export class StorageError extends Error {}

/** Bytes on disk do not verify: a bad checksum, a bad marker or a pointer out of range. */
export class CorruptionError extends StorageError {
  override readonly name = 'CorruptionError';

  constructor(
    readonly path: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`corrupt file ${path} at offset ${offset}: ${reason}`);
  }
}

/**
 * A write or fsync of the file failed. The handle is closed and every later call on it raises
 * this same error: data the kernel may have dropped is never assumed written, so the file must
 * be reopened, which recovers from the last durable header.
 */
export class FileFailedError extends StorageError {
  override readonly name = 'FileFailedError';

  constructor(
    readonly path: string,
    readonly operation: 'write' | 'fsync' | 'truncate',
    cause: unknown,
  ) {
    super(
      `${operation} of ${path} failed (${cause instanceof Error ? cause.message : String(cause)}); the file is closed, reopen it to recover`,
      { cause },
    );
  }
}

/** The file is closed, or was opened read-only and a write was requested. */
export class FileClosedError extends StorageError {
  override readonly name = 'FileClosedError';

  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

/** `create` found a file at the path; it is never overwritten. */
export class FileExistsError extends StorageError {
  override readonly name = 'FileExistsError';

  constructor(readonly path: string) {
    super(`cannot create ${path}: a file already exists there`);
  }
}

/** A header verifies but was written by a newer format version than this code reads. */
export class UnsupportedFormatError extends StorageError {
  override readonly name = 'UnsupportedFormatError';

  constructor(
    readonly path: string,
    readonly offset: number,
    readonly version: number,
  ) {
    super(
      `${path}: the header at offset ${offset} has format version ${version}, newer than this Divan reads; upgrade Divan to open it`,
    );
  }
}
