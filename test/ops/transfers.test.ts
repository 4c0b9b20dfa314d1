/** `SnapshotTransfers`: tasks in CouchDB's `_active_tasks` shape while transfers run. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SnapshotTransfers } from '../../src/ops/transfers.js';

test('transfer tasks while running', () => {
  let now = 1_700_000_000_000;
  const transfers = new SnapshotTransfers(() => now);
  const first = transfers.begin('cities', 'n2');
  const second = transfers.begin('users', 'n3');
  assert.equal(transfers.size, 2);

  let [task] = transfers.tasks('n1');
  assert.equal(task!.progress, 0, 'no size known before the first chunk');
  assert.equal(task!.total_bytes, 0);

  now += 5_000;
  first.update(256, 1024);
  [task] = transfers.tasks('n1');
  assert.equal(task!.type, 'raft_snapshot');
  assert.equal(task!.node, 'n1');
  assert.equal(task!.database, 'cities');
  assert.equal(task!.source, 'n2');
  assert.equal(task!.progress, 25);
  assert.equal(task!.bytes_done, 256);
  assert.equal(typeof task!.pid, 'string');
  assert.equal(task!.started_on, 1_700_000_000);
  assert.equal(task!.updated_on, 1_700_000_005);

  first.update(1, Number.POSITIVE_INFINITY);
  assert.equal(transfers.tasks('n1')[0]!.total_bytes, 0, 'an unknown size reads as 0');

  first.end();
  assert.deepEqual(
    transfers.tasks('n1').map((remaining) => remaining.database),
    ['users'],
  );
  second.end();
  second.end();
  assert.equal(transfers.size, 0);
});
