/**
 * Keys and values of the cluster benchmark, the same for every system: values of exactly
 * `VALUE_BYTES` printable ASCII characters (a Divan or PouchDB document is one string field
 * `v` holding it; an etcd value is those bytes), and a new key for every write.
 *
 * Keys are a random prefix per run followed by the request index in fixed-width hex, so keys
 * of one run increase, like CouchDB's default `sequential` uuids, and never repeat across
 * runs. Values rotate through a pool of random strings made once, so building a request
 * costs no random generation.
 */
import { randomBytes } from 'node:crypto';

export const VALUE_BYTES = 256;
const VALUE_POOL_SIZE = 1024;
const PREFIX_BYTES = 6;
const INDEX_HEX_DIGITS = 10;

const valuePool: readonly string[] = Array.from({ length: VALUE_POOL_SIZE }, () =>
  // base64url of 192 random bytes is exactly 256 characters.
  randomBytes((VALUE_BYTES * 3) / 4).toString('base64url'),
);

/** Returns the value that request `index` writes: `VALUE_BYTES` ASCII characters. */
export function valueFor(index: number): string {
  return valuePool[index % VALUE_POOL_SIZE]!;
}

/** New keys for one run: `<random prefix>-<index in hex>`. */
export class KeySequence {
  readonly prefix = randomBytes(PREFIX_BYTES).toString('hex');

  key(index: number): string {
    return `${this.prefix}-${index.toString(16).padStart(INDEX_HEX_DIGITS, '0')}`;
  }
}
