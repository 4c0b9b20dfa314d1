/**
 * The arguments of `divan start` for a node that forms a cluster of its own, for tests that
 * run the command line.
 */
import { join } from 'node:path';

/** Returns `start` and its flags for node n1 in `dir`, with admin `admin:secret`. */
export function singleNodeStartArgs(
  dir: string,
  http: number,
  peer: number,
  secretFile: string,
): string[] {
  return [
    'start',
    '--name',
    'n1',
    '--data',
    join(dir, 'n1'),
    '--http',
    `127.0.0.1:${http}`,
    '--peer',
    `127.0.0.1:${peer}`,
    '--members',
    `n1@127.0.0.1:${peer}`,
    '--secret-file',
    secretFile,
    '--admin',
    'admin:secret',
  ];
}
