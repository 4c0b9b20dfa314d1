/**
 * CPU and memory of a benchmarked system's processes over one run: CPU seconds per node
 * (the difference of `/proc/<pid>/stat` between the start and the end of the run, restarts
 * included) and the largest resident set seen by sampling `/proc/<pid>/status` every
 * `SAMPLE_INTERVAL_MS` during the run.
 *
 * The sampled peak can miss a spike shorter than the interval; `lifetimePeakBytes` (the
 * kernel's `VmHWM` at the end of the run) cannot, but covers the whole life of the process.
 */
import type { PeerProcess } from './process.js';

const SAMPLE_INTERVAL_MS = 250;

export interface NodeUsage {
  node: string;
  cpuSeconds: number;
  /** Largest resident set sampled during the run, in bytes (0 if never sampled alive). */
  peakResidentBytes: number;
  /** `VmHWM` of the live process at the end of the run, or null if it was not running. */
  lifetimePeakBytes: number | null;
}

/** Measures a set of processes from `start()` until `finish()`. */
export class ResourceMeter {
  readonly #processes: readonly PeerProcess[];
  readonly #cpuAtStart = new Map<PeerProcess, number>();
  readonly #peakBytes = new Map<PeerProcess, number>();
  #timer: NodeJS.Timeout | null = null;

  constructor(processes: readonly PeerProcess[]) {
    this.#processes = processes;
  }

  start(): void {
    for (const process of this.#processes) {
      this.#cpuAtStart.set(process, process.cpuSeconds());
      this.#peakBytes.set(process, 0);
    }
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), SAMPLE_INTERVAL_MS);
  }

  finish(): NodeUsage[] {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#sample();
    return this.#processes.map((process) => ({
      node: process.name,
      cpuSeconds: process.cpuSeconds() - (this.#cpuAtStart.get(process) ?? 0),
      peakResidentBytes: this.#peakBytes.get(process) ?? 0,
      lifetimePeakBytes: process.peakResidentBytes(),
    }));
  }

  #sample(): void {
    for (const process of this.#processes) {
      const bytes = process.residentBytes();
      if (bytes !== null && bytes > (this.#peakBytes.get(process) ?? 0)) {
        this.#peakBytes.set(process, bytes);
      }
    }
  }
}
