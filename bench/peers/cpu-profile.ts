/**
 * Summaries of V8 CPU profiles (`.cpuprofile` files written by `node --cpu-prof`): self time
 * per function and per layer, where a layer is a Divan source folder (`divan/raft`,
 * `divan/engine`, ...), an npm package (`npm/fastify`), a part of Node.js (`node/net`), or
 * one of V8's pseudo-frames: garbage collection, idle, and `(program)` (native code V8 could
 * not attribute to a JavaScript function).
 *
 * Self time is estimated from sample counts: each sample stands for the profile's duration
 * divided by its sample count. Shares are of busy time (all but idle).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const MICROSECONDS_PER_MILLISECOND = 1000;
const PERCENT = 100;

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
}

export interface SelfTime {
  readonly name: string;
  readonly selfMs: number;
  /** Share of the busy time, in percent. */
  readonly percentOfBusy: number;
}

export interface FunctionSelfTime extends SelfTime {
  readonly layer: string;
  readonly location: string;
}

export interface ProfileSummary {
  readonly file: string;
  readonly durationMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly layers: readonly SelfTime[];
  readonly functions: readonly FunctionSelfTime[];
}

/** Returns the layer of a frame, from its script URL or pseudo-frame name. */
export function layerOf(frame: Pick<CallFrame, 'functionName' | 'url'>): string {
  const { functionName, url } = frame;
  if (url === '') {
    if (functionName === '(garbage collector)') return 'v8/gc';
    if (functionName === '(idle)') return 'v8/idle';
    if (functionName === '(program)') return 'v8/program';
    return 'native';
  }
  const divan = /\/dist\/(src|bench)\/(?:([^/]+)\/)?/.exec(url);
  if (divan !== null) {
    if (divan[1] === 'bench') return 'divan/bench';
    return divan[2] === undefined ? 'divan/src' : `divan/${divan[2]}`;
  }
  const npm = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(
    url.slice(url.lastIndexOf('/node_modules/')),
  );
  if (npm !== null) return `npm/${npm[1]}`;
  if (url.startsWith('node:')) {
    const module = url.slice('node:'.length).replace(/^internal\//, '');
    return `node/${module.split('/')[0]!.replace(/^_/, '')}`;
  }
  return 'other';
}

function shortLocation(frame: CallFrame): string {
  const path = frame.url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
  return `${path}:${frame.lineNumber + 1}`;
}

/** Summarises one profile: the `top` functions by self time, and every layer. */
export function summariseProfile(path: string, top: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const durationMs = (profile.endTime - profile.startTime) / MICROSECONDS_PER_MILLISECOND;
  const sampleMs = profile.samples.length === 0 ? 0 : durationMs / profile.samples.length;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const hits = new Map<number, number>();
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);

  const layers = new Map<string, number>();
  const functions = new Map<string, { layer: string; location: string; ms: number }>();
  let idleMs = 0;
  for (const [id, count] of hits) {
    const frame = byId.get(id)!.callFrame;
    const ms = count * sampleMs;
    const layer = layerOf(frame);
    if (layer === 'v8/idle') {
      idleMs += ms;
      continue;
    }
    layers.set(layer, (layers.get(layer) ?? 0) + ms);
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    const location = frame.url === '' ? '' : shortLocation(frame);
    const key = `${name} ${location}`;
    const entry = functions.get(key) ?? { layer, location, ms: 0 };
    entry.ms += ms;
    functions.set(key, entry);
  }
  const busyMs = durationMs - idleMs;
  const share = (ms: number) => (busyMs > 0 ? (ms / busyMs) * PERCENT : 0);
  return {
    file: path,
    durationMs,
    idleMs,
    busyMs,
    layers: [...layers]
      .sort(([, a], [, b]) => b - a)
      .map(([name, selfMs]) => ({ name, selfMs, percentOfBusy: share(selfMs) })),
    functions: [...functions]
      .sort(([, a], [, b]) => b.ms - a.ms)
      .slice(0, top)
      .map(([key, entry]) => ({
        name: key.slice(0, key.length - entry.location.length).trim(),
        layer: entry.layer,
        location: entry.location,
        selfMs: entry.ms,
        percentOfBusy: share(entry.ms),
      })),
  };
}

/** Lists the `.cpuprofile` files directly under `dir`, sorted by name. */
export function profilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith('.cpuprofile'))
    .sort()
    .map((name) => join(dir, name));
}
