/**
 * The eight B+trees of a database file, opened over one block file from the roots a header
 * stores:
 *
 * | tree          | key                 | value                        | reduction            |
 * |---------------|---------------------|------------------------------|----------------------|
 * | byId          | document id (UTF-8) | DocInfo (doc-info.ts)        | counts and sizes     |
 * | bySeq         | update sequence     | SeqRow (doc-info.ts)         | count                |
 * | local         | `_local/` id        | LocalDoc (side-records.ts)   | none                 |
 * | purge         | purge request uuid  | PurgeInfo                    | count                |
 * | purgeSeq      | purge sequence      | PurgeInfo                    | count                |
 * | log           | log index           | StoredEntry (stored-entry.ts)| first and last entry |
 * | requests      | request id          | RequestRecord                | none                 |
 * | requestIndex  | log index           | request id                   | none                 |
 *
 * `EngineTrees` is an immutable value like each tree in it: a change returns new trees, and a
 * reader holding the old value keeps a consistent view.
 */

import type { BlockFile } from '../storage/block-file.js';
import { BTree } from '../storage/btree.js';
import {
  countReducer,
  type Reducer,
  stringValues,
  type TreeCodec,
  unsignedIntegerKeys,
  utf8StringKeys,
} from '../storage/codecs.js';
import type { NodeCache } from '../storage/node-cache.js';
import {
  type DocInfo,
  docInfoCodec,
  type IdReduction,
  idReducer,
  type SeqRow,
  seqRowCodec,
} from './doc-info.js';
import { TREE_NAMES, type TreeRoots } from './header.js';
import {
  type LocalDoc,
  localDocCodec,
  type PurgeInfo,
  purgeInfoCodec,
  type RequestRecord,
  requestRecordCodec,
} from './side-records.js';
import {
  type LogBounds,
  logBoundsReducer,
  type StoredEntry,
  storedEntryCodec,
} from './stored-entry.js';

/**
 * Values encoded longer than this are stored as records of their own, so that a document with
 * a long revision history or a large outcome does not fill a node by itself.
 */
const OUT_OF_LINE_VALUE_BYTES = 1536;
/** Outcomes of bulk writes are long and rarely read, so they go out of line sooner. */
const OUT_OF_LINE_OUTCOME_BYTES = 256;

export interface EngineTrees {
  readonly byId: BTree<string, DocInfo, IdReduction>;
  readonly bySeq: BTree<number, SeqRow, number>;
  readonly local: BTree<string, LocalDoc>;
  readonly purge: BTree<string, PurgeInfo, number>;
  readonly purgeSeq: BTree<number, PurgeInfo, number>;
  readonly log: BTree<number, StoredEntry, LogBounds>;
  readonly requests: BTree<string, RequestRecord>;
  readonly requestIndex: BTree<number, string>;
}

export interface TreeOptions {
  /** Node cache for every tree; `NodeCache.shared` when absent. */
  readonly cache?: NodeCache;
  /** Target node size in bytes; the storage default when absent. */
  readonly nodeSizeBytes?: number;
}

const countRows = countReducer as Reducer<number, SeqRow, number>;

const codecs: { readonly [name in keyof EngineTrees]: TreeCodecOf<EngineTrees[name]> } = {
  byId: { key: utf8StringKeys, value: docInfoCodec, reducer: idReducer },
  bySeq: { key: unsignedIntegerKeys, value: seqRowCodec, reducer: countRows },
  local: { key: utf8StringKeys, value: localDocCodec },
  purge: {
    key: utf8StringKeys,
    value: purgeInfoCodec,
    reducer: countReducer as Reducer<string, PurgeInfo, number>,
  },
  purgeSeq: {
    key: unsignedIntegerKeys,
    value: purgeInfoCodec,
    reducer: countReducer as Reducer<number, PurgeInfo, number>,
  },
  log: { key: unsignedIntegerKeys, value: storedEntryCodec, reducer: logBoundsReducer },
  requests: { key: utf8StringKeys, value: requestRecordCodec },
  requestIndex: { key: unsignedIntegerKeys, value: stringValues },
};

type TreeCodecOf<T> = T extends BTree<infer K, infer V, infer R> ? TreeCodec<K, V, R> : never;

/** Opens every tree of a file from its header's roots. */
export function openTrees(file: BlockFile, roots: TreeRoots, options: TreeOptions): EngineTrees {
  const base = { cache: options.cache, nodeSizeBytes: options.nodeSizeBytes };
  const inline = { ...base, outOfLineValueBytes: OUT_OF_LINE_VALUE_BYTES };
  return {
    byId: BTree.open(file, codecs.byId, roots.byId, inline),
    bySeq: BTree.open(file, codecs.bySeq, roots.bySeq, inline),
    local: BTree.open(file, codecs.local, roots.local, inline),
    purge: BTree.open(file, codecs.purge, roots.purge, inline),
    purgeSeq: BTree.open(file, codecs.purgeSeq, roots.purgeSeq, inline),
    log: BTree.open(file, codecs.log, roots.log, inline),
    requests: BTree.open(file, codecs.requests, roots.requests, {
      ...base,
      outOfLineValueBytes: OUT_OF_LINE_OUTCOME_BYTES,
    }),
    requestIndex: BTree.open(file, codecs.requestIndex, roots.requestIndex, base),
  };
}

/** Returns the roots a header stores for these trees. */
export function rootsOf(trees: EngineTrees): TreeRoots {
  const roots: Partial<Record<keyof EngineTrees, EngineTrees[keyof EngineTrees]['root']>> = {};
  for (const name of TREE_NAMES) roots[name] = trees[name].root;
  return roots as TreeRoots;
}

/** Bytes of all nodes and out-of-line values of the trees that hold documents. */
export function documentTreeBytes(trees: EngineTrees): number {
  let total = 0;
  for (const tree of [trees.byId, trees.bySeq, trees.local]) total += tree.root?.sizeBytes ?? 0;
  return total;
}
