/**
 * A seeded pseudo-random generator (sfc32, a small fast counter generator) for the simulator.
 * Everything random in a run derives from one seed, so a run replays exactly. Separate streams
 * (`fork`) keep, for example, each node's election timeouts independent of the workload.
 */

const WARM_UP_ROUNDS = 12;

export class SimRandom {
  #a: number;
  #b: number;
  #c: number;
  #d = 1;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = seed >>> 0;
    this.#d = (seed / 2 ** 32) >>> 0 || 1;
    for (let i = 0; i < WARM_UP_ROUNDS; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Returns a uniform number in [0, 1). */
  next(): number {
    return this.nextUint32() / 2 ** 32;
  }

  /** Returns a uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Returns a new independent stream derived from this one and `label`. */
  fork(label: number): SimRandom {
    return new SimRandom((this.nextUint32() ^ Math.imul(label + 1, 0x85ebca6b)) >>> 0);
  }
}
