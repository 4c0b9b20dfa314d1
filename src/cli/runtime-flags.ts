/**
 * The Node.js flags a node process runs with: Divan's counterpart of CouchDB's `vm.args`.
 *
 * V8 reads its heap layout once, when the process starts, so these cannot be set from inside
 * `divan start`. Whatever starts a node passes them: `bin/divan.js` in its `#!` line, `divan
 * cluster` when it spawns nodes, and the benchmark, chaos and test harnesses. A node started
 * without them works the same and logs a warning.
 */

/**
 * Semi-spaces of 4 MiB instead of Node.js 20's 16, so a new space of 8 MiB instead of 32.
 * Under the cluster benchmark's load (scenarios 1 to 4, three nodes) the largest resident set
 * of a node fell from 261-265 MiB to 223-234 MiB (four runs each). Scavenges run more often
 * and promote more of a request's objects: bulk writes of 128 documents lost about 10% of their
 * documents/s, while single-document writes and reads stayed within the run-to-run spread.
 * The numbers and commands are in docs/benchmarks.md.
 */
export const NODE_RUNTIME_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/**
 * Returns the runtime flags this process lacks: each of NODE_RUNTIME_FLAGS that appears neither
 * in the command line given to node (`execArgv`) nor in NODE_OPTIONS. Node accepts V8 flag
 * names with `_` as well as `-`, so both spellings count.
 */
export function missingRuntimeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env.NODE_OPTIONS ?? '',
): string[] {
  const present = new Set([...execArgv, ...nodeOptions.split(/\s+/)].map(normalizeFlag));
  return NODE_RUNTIME_FLAGS.filter((flag) => !present.has(normalizeFlag(flag)));
}

/** Returns `flag` with `_` turned into `-` in its name, the part before any `=`. */
function normalizeFlag(flag: string): string {
  const equals = flag.indexOf('=');
  const name = equals < 0 ? flag : flag.slice(0, equals);
  const value = equals < 0 ? '' : flag.slice(equals);
  return name.replaceAll('_', '-') + value;
}
