/**
 * Crash recovery by cutting and damaging a real file. The file holds commit A, commit B and
 * an uncommitted tail. It is cut at every offset across its last blocks (a stride in the CI
 * suite, every offset under test:full), and single bytes are flipped in the tail. Reopening
 * must give exactly B when the cut falls after B's header, and A when it falls before or
 * inside B's header (the empty tree when it falls before A's header ends). No other state is
 * accepted. A flipped byte in B's data may instead surface as a CorruptionError when that
 * data is read, never as wrong data.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlockFile, type CommitDiscipline } from '../../src/storage/block-file.js';
import { BLOCK_SIZE } from '../../src/storage/block-layout.js';
import { BTree, decodeRoot, encodeRoot } from '../../src/storage/btree.js';
import { stringValues, type TreeCodec, utf8StringKeys } from '../../src/storage/codecs.js';
import { CorruptionError } from '../../src/storage/errors.js';
import { NodeCache } from '../../src/storage/node-cache.js';
import { seededRandom } from '../../src/storage/power-loss.js';
import { fullRun, scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

const codec: TreeCodec<string, string> = { key: utf8StringKeys, value: stringValues };
const treeOptions = { nodeSizeBytes: 512 };

/** Blocks before commit B's header in which cuts are made. */
const BLOCKS_BEFORE_HEADER = 3;
/** In the CI suite, cuts are made at every offset this close to a block or header edge. */
const EDGE_BYTES = 48;
const CUT_STRIDE = 17;

type Entries = Array<[string, string]>;

interface Scenario {
  bytes: Buffer;
  stateA: Entries;
  stateB: Entries;
  headerStart: number;
  headerEnd: number;
  regionStart: number;
}

function entries(prefix: string, count: number, valueLength: number): Entries {
  return Array.from({ length: count }, (_, i) => [
    `${prefix}${String(i).padStart(4, '0')}`,
    'v'.repeat(valueLength + (i % 7)),
  ]);
}

async function buildScenario(path: string, discipline: CommitDiscipline): Promise<Scenario> {
  const file = await BlockFile.create(path, encodeRoot(null), { discipline });
  const empty = BTree.open(file, codec, null, treeOptions);
  const treeA = empty.modify({ insert: entries('a', 200, 30) });
  await file.commit(encodeRoot(treeA.root));
  const regionStart = file.end;
  const treeB = treeA.modify({ insert: entries('b', 150, 40), remove: ['a0003', 'a0100'] });
  await file.commit(encodeRoot(treeB.root));
  const headerEnd = file.end;
  const headerStart = Math.floor((headerEnd - 1) / BLOCK_SIZE) * BLOCK_SIZE;
  const stateA = readAll(treeA);
  const stateB = readAll(treeB);
  await file.close();
  const withTail = await appendUncommittedTail(path, discipline, treeB.root);
  return {
    bytes: withTail,
    stateA,
    stateB,
    headerStart,
    headerEnd,
    regionStart,
  };
}

/** Appends tree C's nodes and a header for it, then cuts that header off. */
async function appendUncommittedTail(
  path: string,
  discipline: CommitDiscipline,
  rootB: BTree<string, string>['root'],
): Promise<Buffer> {
  const file = await BlockFile.open(path, { discipline });
  const before = file.end;
  const treeC = BTree.open(file, codec, rootB, treeOptions).modify({
    insert: entries('c', 120, 50),
  });
  const tailEnd = file.end;
  await file.commit(encodeRoot(treeC.root));
  await file.close();
  const bytes = readFileSync(path).subarray(0, tailEnd);
  assert.ok(tailEnd > before + BLOCK_SIZE, 'the uncommitted tail spans blocks');
  return Buffer.from(bytes);
}

function readAll(tree: BTree<string, string>): Entries {
  const all: Entries = [];
  tree.fold((key, value) => {
    all.push([key, value]);
  });
  return all;
}

/** Opens the file and reads its tree; returns the entries or the CorruptionError raised. */
async function recover(path: string): Promise<Entries | CorruptionError> {
  let file: BlockFile;
  try {
    file = await BlockFile.open(path);
  } catch (error) {
    if (error instanceof CorruptionError) return error;
    throw error;
  }
  try {
    const tree = BTree.open(file, codec, decodeRoot(file.header), {
      ...treeOptions,
      cache: new NodeCache(0),
    });
    return readAll(tree);
  } catch (error) {
    if (error instanceof CorruptionError) return error;
    throw error;
  } finally {
    await file.close();
  }
}

function cutOffsets(scenario: Scenario): number[] {
  const first = Math.max(1, scenario.headerStart - BLOCKS_BEFORE_HEADER * BLOCK_SIZE);
  const offsets: number[] = [];
  const edges = [scenario.headerStart, scenario.headerEnd, scenario.bytes.length];
  for (let offset = first; offset <= scenario.bytes.length; offset++) {
    const nearEdge =
      offset % BLOCK_SIZE < EDGE_BYTES ||
      offset % BLOCK_SIZE > BLOCK_SIZE - EDGE_BYTES ||
      edges.some((edge) => Math.abs(offset - edge) < EDGE_BYTES);
    if (fullRun || nearEdge || offset % CUT_STRIDE === 0) offsets.push(offset);
  }
  return offsets;
}

for (const discipline of ['one-fsync', 'two-fsync'] as const) {
  test(`cut at every offset recovers a commit (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    const scenario = await buildScenario(join(dir, 'source.db'), discipline);
    const path = join(dir, 'cut.db');
    const random = seededRandom(discipline === 'one-fsync' ? 3 : 4);
    for (const offset of cutOffsets(scenario)) {
      // Before A's header ends, only the empty tree of the creation header remains.
      const expected =
        offset >= scenario.headerEnd
          ? scenario.stateB
          : offset >= scenario.regionStart
            ? scenario.stateA
            : [];
      // Data lost over preallocated space leaves zeros instead of a shorter file.
      const zeros = random() < 0.25 ? 1 + Math.floor(random() * 3 * BLOCK_SIZE) : 0;
      writeFileSync(path, Buffer.concat([scenario.bytes.subarray(0, offset), Buffer.alloc(zeros)]));
      const state = await recover(path);
      const where = `cut at ${offset}, ${zeros} zeros after it`;
      assert.ok(!(state instanceof CorruptionError), `${where}: ${String(state)}`);
      assert.deepEqual(
        state,
        expected,
        `${where} (header B at ${scenario.headerStart}-${scenario.headerEnd})`,
      );
    }
  });

  test(`flipped tail bytes never give a wrong state (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    const scenario = await buildScenario(join(dir, 'source.db'), discipline);
    const path = join(dir, 'flip.db');
    const random = seededRandom(discipline === 'one-fsync' ? 1 : 2);
    const flips = scaled(300, 3000);
    const span = scenario.bytes.length - scenario.regionStart;
    for (let i = 0; i < flips; i++) {
      const offset = scenario.regionStart + Math.floor(random() * span);
      const damaged = Buffer.from(scenario.bytes);
      damaged[offset]! ^= 1 + Math.floor(random() * 255);
      writeFileSync(path, damaged);
      const state = await recover(path);
      const where = `flip at ${offset} (header B at ${scenario.headerStart}-${scenario.headerEnd})`;
      if (offset >= scenario.headerEnd) {
        assert.deepEqual(state, scenario.stateB, `${where}: uncommitted bytes do not matter`);
      } else if (offset >= scenario.headerStart) {
        assert.deepEqual(state, scenario.stateA, `${where}: a damaged header falls back`);
      } else if (discipline === 'one-fsync') {
        assert.deepEqual(state, scenario.stateA, `${where}: the region checksum rejects B`);
      } else if (!(state instanceof CorruptionError)) {
        assert.deepEqual(state, scenario.stateB, `${where}: B or a CorruptionError`);
      }
    }
  });
}
