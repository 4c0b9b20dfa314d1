/**
 * `mergeViews` against random member views: leaders, leaderless databases, lagging and down
 * members follow the rules stated in cluster-status.ts whatever the views contain.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  LAG_THRESHOLD_ENTRIES,
  type MemberView,
  mergeViews,
} from '../../src/ops/cluster-status.js';
import type { LocalGroupRow, LocalStatus } from '../../src/ops/source.js';

const NODES = ['n1', 'n2', 'n3'];
const DATABASES = ['_dbs', 'alpha', 'beta'];
const PAGE = { skip: 0, limit: 50 };

const rowArbitrary = (db: string) =>
  fc
    .record({
      open: fc.boolean(),
      role: fc.constantFrom('leader', 'follower', 'candidate'),
      term: fc.integer({ min: 1, max: 4 }),
      commit: fc.integer({ min: 0, max: 10 * LAG_THRESHOLD_ENTRIES }),
      applied: fc.integer({ min: 0, max: 10 * LAG_THRESHOLD_ENTRIES }),
      unapplied: fc.integer({ min: 0, max: 10 * LAG_THRESHOLD_ENTRIES }),
      matches: fc.tuple(
        ...NODES.map(() => fc.integer({ min: 0, max: 12 * LAG_THRESHOLD_ENTRIES })),
      ),
    })
    .map(
      ({ open, role, term, commit, applied, unapplied, matches }): LocalGroupRow =>
        open
          ? {
              db,
              open,
              role,
              term,
              leader: null,
              commit_index: commit,
              applied_index: Math.min(applied, commit),
              last_index: Math.min(applied, commit) + unapplied,
              voters: NODES,
              learners: [],
              ...(role === 'leader'
                ? { match_index: Object.fromEntries(NODES.map((node, i) => [node, matches[i]!])) }
                : {}),
            }
          : { db, open },
    );

const viewArbitrary = fc.tuple(fc.boolean(), fc.tuple(...DATABASES.map((db) => rowArbitrary(db))));

function localStatus(name: string, rows: LocalGroupRow[]): LocalStatus {
  return {
    node: name,
    uptime_s: 1,
    peers: NODES.filter((peer) => peer !== name).map((peer) => ({
      name: peer,
      connected: true,
      rtt_ms: 0.5,
    })),
    summary: {
      groups_open: rows.filter((row) => row.open).length,
      groups_led: rows.filter((row) => row.role === 'leader').length,
      groups_without_leader: 0,
      max_apply_lag: 0,
      snapshot_transfers: 0,
    },
    transfers: [],
    databases: { total: DATABASES.length - 1, skip: 0, rows },
  };
}

test('merged views follow the rules', () => {
  fc.assert(
    fc.property(fc.tuple(viewArbitrary, viewArbitrary, viewArbitrary), (inputs) => {
      // n1 serves the request, so it always has its own view.
      const views = inputs.map(([reachable, rows], index): MemberView => {
        const name = NODES[index]!;
        const http = `127.0.0.1:${5984 + index}`;
        return index === 0 || reachable
          ? { name, http, status: localStatus(name, rows) }
          : { name, http, error: 'connect ECONNREFUSED' };
      });
      const status = mergeViews('n1', views, PAGE);

      assert.deepEqual(
        status.databases.rows.map((row) => row.db),
        DATABASES,
      );
      assert.equal(status.nodes.find((node) => node.name === 'n1')!.connected, null);
      for (const node of status.nodes) {
        assert.equal(node.reachable, !('error' in views.find((view) => view.name === node.name)!));
      }
      for (const row of status.databases.rows) {
        const leaders = views.flatMap((view) => {
          if (!('status' in view)) return [];
          const own = view.status.databases.rows.find((candidate) => candidate.db === row.db)!;
          return own.role === 'leader' && own.open ? [{ name: view.name, term: own.term! }] : [];
        });
        assert.equal(row.leaderless, leaders.length === 0, `${row.db} leaderless`);
        if (leaders.length > 0) {
          const highest = Math.max(...leaders.map((leader) => leader.term));
          assert.equal(row.term, highest, `${row.db} term is the highest leader's`);
          assert.ok(
            leaders.some((leader) => leader.name === row.leader && leader.term === highest),
          );
        }
        for (const [name, member] of Object.entries(row.members)) {
          const view = views.find((candidate) => candidate.name === name)!;
          if ('error' in view) {
            assert.equal(member.state, 'down', `${name} down in ${row.db}`);
            assert.ok(row.lagging.includes(name), `${name} listed as lagging in ${row.db}`);
            continue;
          }
          const own = view.status.databases.rows.find((candidate) => candidate.db === row.db)!;
          const leaderView = views.find((candidate) => candidate.name === row.leader);
          const leaderOwn =
            leaderView !== undefined && 'status' in leaderView
              ? leaderView.status.databases.rows.find((candidate) => candidate.db === row.db)
              : undefined;
          const match = leaderOwn?.match_index?.[name];
          if (own.open && row.commit_index !== null && name !== row.leader && match !== undefined) {
            // The leader's match index, not the member's own last index, shows what its log
            // contains, because its own log may contain entries that conflict with the leader's.
            if (match >= row.commit_index) {
              assert.equal(member.state, 'ok', `${name} has every committed entry in its log`);
            }
            const behind = row.commit_index - LAG_THRESHOLD_ENTRIES;
            if (match < behind && own.applied_index! < behind) {
              assert.equal(member.state, 'lagging', `${name} lacks committed entries`);
            }
          }
          if (member.state === 'lagging') {
            assert.ok(member.lag! > LAG_THRESHOLD_ENTRIES, `${name} lag past the threshold`);
          }
          if (member.state === 'ok' && member.lag !== undefined) {
            assert.ok(member.lag <= LAG_THRESHOLD_ENTRIES, `${name} lag within the threshold`);
          }
        }
      }
      assert.equal(status.leaderless, status.databases.rows.filter((row) => row.leaderless).length);
    }),
  );
});
