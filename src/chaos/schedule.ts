/**
 * The seeded fault schedule of a chaos run: which faults, in which order, at which planned
 * time, for how long, and the random choices each one makes. The same seed and options give
 * the same schedule. What a fault hits at run time (which node leads then) depends on the
 * cluster, so a replay repeats the schedule, not every interleaving.
 *
 * The first round fires every enabled kind once, in a seeded order, so that a run long enough
 * for that round meets the "every fault kind fired" minimum; later faults are drawn with the
 * weights below. One fault runs at a time and heals before the next starts.
 */
import { SimRandom } from '../sim/random.js';
import { assert } from '../util/assert.js';

export const FAULT_KINDS = [
  'kill',
  'pause',
  'partition',
  'partition-one-way',
  'isolate-leader',
  'network-delay',
  'fsync-delay',
  'fsync-stall',
  'fsync-failure',
  'transfer',
  'compaction',
  'power-loss',
  'cluster-power-loss',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

/** The kinds that need power-loss mode (journals of synced lengths on every node). */
export const POWER_LOSS_KINDS: readonly FaultKind[] = ['power-loss', 'cluster-power-loss'];

interface KindPlan {
  /** How long the fault lasts (node down, link cut, fsync slowed), in ms. */
  readonly durationMs: readonly [number, number];
  /** Relative weight after the first round. */
  readonly weight: number;
}

/**
 * Durations. A pause outlasts the longest election timeout (4 s at the default 100 ms tick)
 * so that the paused leader is deposed; partitions outlast the transport's liveness timeout
 * (about 4 s) for the same reason.
 */
const PLANS: Readonly<Record<FaultKind, KindPlan>> = {
  kill: { durationMs: [1_000, 3_000], weight: 3 },
  pause: { durationMs: [4_500, 6_500], weight: 2 },
  partition: { durationMs: [4_000, 6_000], weight: 2 },
  'partition-one-way': { durationMs: [4_000, 6_000], weight: 2 },
  'isolate-leader': { durationMs: [4_000, 6_000], weight: 2 },
  'network-delay': { durationMs: [2_500, 4_000], weight: 1 },
  'fsync-delay': { durationMs: [2_500, 4_000], weight: 1 },
  'fsync-stall': { durationMs: [3_000, 4_500], weight: 1 },
  'fsync-failure': { durationMs: [500, 1_500], weight: 1 },
  transfer: { durationMs: [0, 0], weight: 1 },
  compaction: { durationMs: [0, 0], weight: 1 },
  'power-loss': { durationMs: [1_000, 3_000], weight: 3 },
  'cluster-power-loss': { durationMs: [500, 1_500], weight: 1 },
};

/** Time before the first fault, so that clients have data to lose. */
const WARM_UP_MS = 2_000;
/** Quiet time between two faults, in ms. */
const GAP_MS: readonly [number, number] = [800, 1_800];
/** Share of node faults (kill, pause, stall, power loss) aimed at the leader. */
export const LEADER_TARGET_SHARE = 0.7;
const NETWORK_DELAY_MS: readonly [number, number] = [20, 200];
const FSYNC_DELAY_MS: readonly [number, number] = [10, 100];
/** An fsync stall holds every fsync this long: far beyond any timeout of a write. */
const FSYNC_STALL_MS: readonly [number, number] = [4_000, 8_000];

/** The fsync delay of every node in the moment before a whole-cluster power loss. */
const POWER_LOSS_FSYNC_MS: readonly [number, number] = [50, 300];

export interface ScheduledFault {
  readonly kind: FaultKind;
  /** Planned start, in ms after the fault phase began. */
  readonly atMs: number;
  readonly durationMs: number;
  /** Aim at the leader of the moment (else at `pick` among the others). */
  readonly targetLeader: boolean;
  /** A number in [0, 1) that chooses among candidates at run time. */
  readonly pick: number;
  /** Cut links silently (lost bytes) or loudly (closed connections). */
  readonly cutStyle: 'silent' | 'reset';
  /** Network delay or fsync delay in ms, for the kinds that have one (see `planFault`). */
  readonly delayMs: number;
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly durationMs: number;
  readonly kinds: readonly FaultKind[];
}

/** Builds the schedule; faults whose planned end passes `durationMs` are left out. */
export function buildSchedule(options: ScheduleOptions): ScheduledFault[] {
  assert(options.kinds.length > 0, 'at least one fault kind');
  const random = new SimRandom(options.seed).fork(1);
  const firstRound = [...options.kinds];
  shuffle(random, firstRound);
  const faults: ScheduledFault[] = [];
  let at = WARM_UP_MS;
  for (let index = 0; ; index++) {
    const kind =
      index < firstRound.length ? firstRound[index]! : weightedKind(random, options.kinds);
    const fault = planFault(random, kind, at);
    if (fault.atMs + fault.durationMs > options.durationMs) break;
    faults.push(fault);
    at = fault.atMs + fault.durationMs + random.int(GAP_MS[0], GAP_MS[1]);
  }
  return faults;
}

function planFault(random: SimRandom, kind: FaultKind, atMs: number): ScheduledFault {
  const plan = PLANS[kind];
  const durationMs = random.int(plan.durationMs[0], plan.durationMs[1]);
  const targetLeader = random.chance(LEADER_TARGET_SHARE);
  const pick = random.next();
  const cutStyle = random.chance(0.5) ? 'silent' : 'reset';
  let delayMs = 0;
  if (kind === 'network-delay') delayMs = random.int(NETWORK_DELAY_MS[0], NETWORK_DELAY_MS[1]);
  if (kind === 'fsync-delay') delayMs = random.int(FSYNC_DELAY_MS[0], FSYNC_DELAY_MS[1]);
  if (kind === 'fsync-stall') delayMs = random.int(FSYNC_STALL_MS[0], FSYNC_STALL_MS[1]);
  if (kind === 'cluster-power-loss') {
    delayMs = random.int(POWER_LOSS_FSYNC_MS[0], POWER_LOSS_FSYNC_MS[1]);
  }
  return { kind, atMs, durationMs, targetLeader, pick, cutStyle, delayMs };
}

function weightedKind(random: SimRandom, kinds: readonly FaultKind[]): FaultKind {
  const total = kinds.reduce((sum, kind) => sum + PLANS[kind].weight, 0);
  let roll = random.next() * total;
  for (const kind of kinds) {
    roll -= PLANS[kind].weight;
    if (roll < 0) return kind;
  }
  return kinds.at(-1)!;
}

function shuffle<T>(random: SimRandom, items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
