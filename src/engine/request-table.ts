/**
 * Pruning of the request-id table. The `requests` tree maps a request id to the index where
 * it was applied and to its outcome. The `requestIndex` tree maps each such index back to the
 * id, so that pruning reads only the oldest entries.
 *
 * A retry gets the outcome of the entry recorded at index j while the retry's index is at
 * most `requestRetention` above j. apply.ts checks that distance on every lookup, so the
 * entry is dead once the applied index passes j + retention, and pruning removes it. Since
 * lookups check the distance themselves, the moment pruning runs changes no outcome, and
 * replicas that commit in different batches still agree. Pruning counts entries, never time.
 */
import type { HeaderFields } from './header.js';
import type { EngineTrees } from './trees.js';

/** Removes the request records that no retry can get back any more. */
export function pruneRequests(trees: EngineTrees, fields: HeaderFields): EngineTrees {
  const threshold = fields.applied.index - fields.requestRetention;
  if (threshold <= 0 || trees.requestIndex.count === 0) return trees;
  const dead: Array<[number, string]> = [];
  trees.requestIndex.fold(
    (index, requestId) => {
      dead.push([index, requestId]);
    },
    { end: threshold, endInclusive: false },
  );
  if (dead.length === 0) return trees;
  // A request id retried after its record died was recorded again at a later index; that
  // newer record stays.
  const records = trees.requests.lookup(dead.map(([, requestId]) => requestId));
  const removedIds = dead
    .filter(([index], i) => records[i]?.index === index)
    .map(([, requestId]) => requestId);
  return {
    ...trees,
    requests: trees.requests.modify({ remove: removedIds }),
    requestIndex: trees.requestIndex.modify({ remove: dead.map(([index]) => index) }),
  };
}
