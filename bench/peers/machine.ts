/**
 * The machine a cluster benchmark ran on: CPU, memory, kernel, load average, and the fsync
 * latency of the disk under the benchmark's data, measured in the run as servers see it: 4 KiB
 * appended to a growing file, then `fdatasync`, one at a time, synchronously (no thread pool).
 */
import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { LatencyHistogram, type LatencySummary } from '../load/histogram.js';

const PROBE_WRITE_BYTES = 4096;
const MS_PER_SECOND = 1000;

export interface FsyncProbe {
  readonly dir: string;
  readonly writeBytes: number;
  readonly writes: number;
  readonly perSecond: number;
  readonly latency: LatencySummary;
}

export interface MachineFacts {
  readonly cpuModel: string;
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly kernel: string;
  readonly node: string;
  /** 1, 5 and 15-minute load averages when the facts were taken. */
  readonly loadAverage: readonly number[];
}

export function machineFacts(): MachineFacts {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    loadAverage: loadavg().map((load) => Math.round(load * 100) / 100),
  };
}

/** Appends and fdatasyncs 4 KiB at a time in `dir`, up to `maxWrites` or `maxSeconds`. */
export function measureFsync(dir: string, maxWrites: number, maxSeconds: number): FsyncProbe {
  const path = join(dir, 'fsync-probe.bin');
  const block = Buffer.alloc(PROBE_WRITE_BYTES, 0x5a);
  const histogram = new LatencyHistogram();
  const fd = openSync(path, 'w');
  const start = performance.now();
  const deadline = start + maxSeconds * MS_PER_SECOND;
  let writes = 0;
  try {
    while (writes < maxWrites && performance.now() < deadline) {
      const began = performance.now();
      writeSync(fd, block, 0, block.length, writes * PROBE_WRITE_BYTES);
      fdatasyncSync(fd);
      histogram.recordMs(performance.now() - began);
      writes += 1;
    }
  } finally {
    closeSync(fd);
    rmSync(path, { force: true });
  }
  const elapsedSeconds = (performance.now() - start) / MS_PER_SECOND;
  const latency = histogram.summary();
  histogram.destroy();
  return {
    dir,
    writeBytes: PROBE_WRITE_BYTES,
    writes,
    perSecond: writes / elapsedSeconds,
    latency,
  };
}
