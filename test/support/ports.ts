/**
 * Free TCP ports on 127.0.0.1 for test nodes, drawn at random below the kernel's ephemeral
 * range. A port the kernel picked for a listener and then released can be handed out again at
 * once as the local port of an outgoing connection. Parallel test files open thousands of
 * those, and a node that binds such a port later fails with EADDRINUSE.
 */
import { readFileSync } from 'node:fs';
import { probeListen } from '../../src/util/listen-probe.js';

/** Lowest port drawn for a test node. */
const MIN_PORT = 10_000;
/** First ephemeral port when /proc cannot be read (the start of Linux's default range). */
const DEFAULT_EPHEMERAL_START = 32_768;
const PORT_ATTEMPTS = 200;

function ephemeralStart(): number {
  try {
    const range = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    const start = Number(range.trim().split(/\s+/)[0]);
    return Number.isInteger(start) && start > MIN_PORT + 1000 ? start : DEFAULT_EPHEMERAL_START;
  } catch {
    return DEFAULT_EPHEMERAL_START;
  }
}

const EPHEMERAL_START = ephemeralStart();

/** Returns a port that was free a moment ago; bind it soon. */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
    const port = MIN_PORT + Math.floor(Math.random() * (EPHEMERAL_START - MIN_PORT));
    if (await isFree(port)) return port;
  }
  throw new Error(
    `no free port found between ${MIN_PORT} and ${EPHEMERAL_START} in ${PORT_ATTEMPTS} attempts; free some ports or retry`,
  );
}

/** Returns `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** Returns the first of `count` consecutive ports that were all free a moment ago. */
export async function freePortRange(count: number): Promise<number> {
  const ATTEMPTS = 50;
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const base = MIN_PORT + Math.floor(Math.random() * (EPHEMERAL_START - MIN_PORT - count));
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

async function isFree(port: number): Promise<boolean> {
  return (await probeListen('127.0.0.1', port)) === null;
}
