/**
 * `divan compact --wait` against a stand-in server on 127.0.0.1 that serves CouchDB's
 * `_compact`, `_active_tasks` and database info the way CouchDB 3.x does, with a compaction
 * on two nodes that advances on each poll and then ends.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';

const BIN = resolve('bin/divan.js');
const run = promisify(execFile);
const POLLS_UNTIL_DONE = 3;
const FILE_BEFORE = 4 * 1024 * 1024;
const FILE_AFTER = 1024 * 1024;

test('compact waits for every node', async (t) => {
  let polls = 0;
  let compacted = false;
  const requests: string[] = [];
  const server = createServer((request, response) => {
    requests.push(`${request.method} ${request.url}`);
    response.setHeader('content-type', 'application/json');
    if (request.method === 'POST' && request.url === '/big/_compact') {
      response.writeHead(202).end('{"ok":true}');
      return;
    }
    if (request.url === '/_active_tasks') {
      polls++;
      compacted = polls > POLLS_UNTIL_DONE;
      const tasks = compacted
        ? []
        : ['n1', 'n2'].map((node) => ({
            type: 'database_compaction',
            node,
            database: 'big',
            phase: 'document_copy',
            progress: polls * 30,
            changes_done: polls * 3,
            total_changes: 10,
            pid: '<0.1.0>',
          }));
      response.writeHead(200).end(JSON.stringify(tasks));
      return;
    }
    if (request.url === '/big') {
      response
        .writeHead(200)
        .end(JSON.stringify({ sizes: { file: compacted ? FILE_AFTER : FILE_BEFORE } }));
      return;
    }
    response.writeHead(404).end('{"error":"not_found","reason":"missing"}');
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;

  const { stdout } = await run(process.execPath, [
    BIN,
    'compact',
    'big',
    '--url',
    `http://admin:secret@127.0.0.1:${port}`,
    '--wait',
  ]);
  assert.match(stdout, /compaction of big started/);
  assert.match(stdout, /compaction of big finished: file size 4\.0 MiB -> 1\.0 MiB/);
  assert.equal(polls, POLLS_UNTIL_DONE + 1, 'polled until no task was left');
  assert.equal(requests[1], 'POST /big/_compact');
});
