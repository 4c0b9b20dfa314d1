/**
 * `divan status URL`: prints the Raft state of the cluster's groups, as the node at URL sees
 * them: the `_dbs` group, then one row per database (leader, term, commit and applied index).
 */
import { request } from 'undici';
import { targetOf } from './remote.js';

interface GroupStatus {
  node: string;
  role: string;
  term: number;
  leader: string | null;
  commit_index: number;
  applied_index: number;
  last_index: number;
  members: string[];
}

/** Databases listed at most; a larger cluster is summarised by the count. */
const MAX_ROWS = 200;

export async function runStatus(url: string): Promise<number> {
  const { base, headers } = targetOf(url);
  const get = async <T>(path: string): Promise<T> => {
    const response = await request(new URL(path, base), { headers });
    const body = await response.body.text();
    if (response.statusCode !== 200) {
      throw new Error(`GET ${path} returned ${response.statusCode}: ${body.trim()}`);
    }
    return JSON.parse(body) as T;
  };

  try {
    const system = await get<GroupStatus>('/_node/_local/_raft');
    const databases = await get<string[]>('/_all_dbs');
    const rows: string[][] = [['database', 'leader', 'term', 'commit', 'applied', 'members']];
    rows.push(row('_dbs', system));
    for (const db of databases.slice(0, MAX_ROWS)) {
      rows.push(row(db, await get<GroupStatus>(`/${encodeURIComponent(db)}/_raft`)));
    }
    console.log(`node ${system.node} (${base.origin})`);
    console.log(formatTable(rows));
    if (databases.length > MAX_ROWS) {
      console.log(`... and ${databases.length - MAX_ROWS} more databases`);
    }
    return 0;
  } catch (error) {
    console.error(`divan status: ${(error as Error).message}`);
    return 1;
  }
}

function row(name: string, status: GroupStatus): string[] {
  return [
    name,
    status.leader ?? '(none)',
    String(status.term),
    String(status.commit_index),
    String(status.applied_index),
    status.members.join(','),
  ];
}

function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, column) =>
    Math.max(...rows.map((cells) => cells[column]!.length)),
  );
  return rows
    .map((cells) =>
      cells
        .map((cell, column) => cell.padEnd(widths[column]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
