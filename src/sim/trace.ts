/**
 * The trace hash of a run: a 64-bit FNV-1a digest (two 32-bit lanes) of every event the
 * simulator processes. Two runs of one seed must print the same hash. A difference means that
 * some input escaped the seed, such as a clock, Math.random or iteration over an unordered set.
 */

const FNV_PRIME = 0x01000193;
const OFFSET_LOW = 0x811c9dc5;
const OFFSET_HIGH = 0xcbf29ce4;

export class TraceHash {
  #low = OFFSET_LOW;
  #high = OFFSET_HIGH;

  /** Mixes a string into the digest. */
  add(text: string): void {
    let low = this.#low;
    let high = this.#high;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      low = Math.imul(low ^ code, FNV_PRIME);
      high = Math.imul(high ^ (code + (low >>> 24)), FNV_PRIME);
    }
    this.#low = low;
    this.#high = high;
  }

  /** Mixes a number into the digest. */
  addNumber(value: number): void {
    this.add(String(value));
  }

  hex(): string {
    return (
      (this.#high >>> 0).toString(16).padStart(8, '0') +
      (this.#low >>> 0).toString(16).padStart(8, '0')
    );
  }
}

/** Returns a 32-bit FNV-1a hash of bytes, for entry identities in the invariant checks. */
export function hashBytes(bytes: Uint8Array, seed = OFFSET_LOW): number {
  let hash = seed;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i]!, FNV_PRIME);
  return hash >>> 0;
}
