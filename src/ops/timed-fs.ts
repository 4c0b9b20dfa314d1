/**
 * `timedFileSystem`: a `FileSystem` layer that times every fsync (a file's `datasync` and
 * `syncDirectory`) and reports it to a callback, for the fsync count and duration metrics.
 *
 * It changes nothing else: every call goes to the layer below unchanged, and a failed fsync
 * is reported with its duration and then rethrown as it was.
 */
import { performance } from 'node:perf_hooks';
import { ForwardingDbFile, ForwardingFileSystem } from '../storage/fault-layers.js';
import type { DbFile, FileSystem } from '../storage/io.js';
import type { FsyncKind } from './metrics.js';

const MILLISECONDS_PER_SECOND = 1000;

/** Receives each fsync's kind and duration in seconds. */
export type FsyncObserver = (kind: FsyncKind, seconds: number) => void;

async function timed<T>(
  kind: FsyncKind,
  observe: FsyncObserver,
  sync: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  try {
    return await sync();
  } finally {
    observe(kind, (performance.now() - started) / MILLISECONDS_PER_SECOND);
  }
}

class TimedDbFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    readonly observe: FsyncObserver,
  ) {
    super(inner);
  }

  override datasync(): Promise<void> {
    return timed('file', this.observe, () => this.inner.datasync());
  }
}

class TimedFileSystem extends ForwardingFileSystem {
  constructor(
    inner: FileSystem,
    readonly observe: FsyncObserver,
  ) {
    super(inner);
  }

  protected override wrap(file: DbFile): DbFile {
    return new TimedDbFile(file, this.observe);
  }

  override syncDirectory(path: string): Promise<void> {
    return timed('directory', this.observe, () => this.inner.syncDirectory(path));
  }
}

/** Wraps `inner` so that every fsync through it is reported to `observe`. */
export function timedFileSystem(inner: FileSystem, observe: FsyncObserver): FileSystem {
  return new TimedFileSystem(inner, observe);
}
