/**
 * A read-only file descriptor shared by reference count: the database file holds one for the
 * file its durable state lives in, and every snapshot pin (snapshot-file.ts) holds one while
 * it ships bytes. The descriptor keeps reading the same file after a compaction swap renames
 * another file over its path (an open descriptor follows the file, not the path, on Linux and
 * every POSIX system), and it is closed when the last holder releases it.
 *
 * Descriptors are opened with `node:fs` directly: they only read bytes that a durable header
 * already covers, so no fault layer has anything to record about them.
 */
import { close, fstatSync, openSync, readSync } from 'node:fs';
import { assert } from '../util/assert.js';

export class SharedDescriptor {
  readonly #fd: number;
  #holders = 1;

  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  /** Opens `path` for reading; the caller holds the first reference. */
  static open(path: string): SharedDescriptor {
    return new SharedDescriptor(path, openSync(path, 'r'));
  }

  get sizeBytes(): number {
    assert(this.#holders > 0, () => `descriptor of ${this.path} read after its last release`);
    return fstatSync(this.#fd).size;
  }

  acquire(): this {
    assert(this.#holders > 0, () => `descriptor of ${this.path} acquired after its last release`);
    this.#holders += 1;
    return this;
  }

  /** Drops one reference; the last one closes the descriptor. */
  release(): void {
    assert(this.#holders > 0, () => `descriptor of ${this.path} released too often`);
    this.#holders -= 1;
    if (this.#holders === 0) close(this.#fd, () => undefined);
  }

  /** Reads exactly `length` bytes at `position`; throws at the end of the file. */
  read(position: number, length: number): Buffer {
    assert(this.#holders > 0, () => `descriptor of ${this.path} read after its last release`);
    const buffer = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const count = readSync(this.#fd, buffer, done, length - done, position + done);
      if (count === 0) throw new Error(`unexpected end of ${this.path} at ${position + done}`);
      done += count;
    }
    return buffer;
  }
}
