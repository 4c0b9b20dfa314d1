/**
 * A cap on the `_changes` feeds that stay open (`continuous`, `eventsource` and `longpoll`) per
 * caller: per user name when authenticated, per IP address when anonymous. A feed counts from
 * the moment its request is accepted until its response closes, whichever way it ends. A
 * request past the cap gets 429 `too_many_requests` before any work is done for it.
 */
import { assert } from '../util/assert.js';
import { CouchError } from '../util/couch-error.js';
import type { RequestTarget } from './request-target.js';

/** Default cap of open feeds per user or anonymous address. */
export const DEFAULT_MAX_FEEDS_PER_CALLER = 100;

const WAITING_FEEDS: ReadonlySet<string> = new Set([
  'continuous',
  'eventsource',
  'longpoll',
  'live',
]);

/** Returns whether a request opens a `_changes` feed that waits for changes. */
export function isWaitingFeed(target: RequestTarget): boolean {
  const second = target.segments[1]?.text;
  if (target.segments.length !== 2 || second !== '_changes') return false;
  return WAITING_FEEDS.has(target.query.get('feed') ?? 'normal');
}

/** Returns the key a caller's feeds are counted under. */
export function feedKey(name: string | null, address: string | undefined): string {
  return name === null ? `address:${address ?? 'unknown'}` : `user:${name}`;
}

export class FeedLimiter {
  readonly #open = new Map<string, number>();

  constructor(readonly maxPerCaller: number) {
    assert(
      Number.isSafeInteger(maxPerCaller) && maxPerCaller >= 1,
      'the feed cap must be positive',
    );
  }

  /** Counts one more open feed for `key`, or raises 429 when the caller is at the cap. */
  acquire(key: string): void {
    const open = this.#open.get(key) ?? 0;
    if (open >= this.maxPerCaller) {
      throw new CouchError(
        429,
        'too_many_requests',
        `At most ${this.maxPerCaller} _changes feeds may be open at once per user or address; close one and try again.`,
      );
    }
    this.#open.set(key, open + 1);
  }

  /** Ends one open feed of `key`; called once for each successful `acquire`. */
  release(key: string): void {
    const open = this.#open.get(key) ?? 0;
    assert(open > 0, () => `feed released for ${key} with none open`);
    if (open === 1) this.#open.delete(key);
    else this.#open.set(key, open - 1);
  }

  /** Open feeds of `key`. */
  openFeeds(key: string): number {
    return this.#open.get(key) ?? 0;
  }

  /** Callers with at least one open feed. */
  get callers(): number {
    return this.#open.size;
  }
}
