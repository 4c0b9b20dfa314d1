/**
 * A deliberately simple reference model of a revision tree for property tests: a map of
 * revisions keyed by `pos:id`, each with its parent key (null when unknown) and its value.
 * Merging a path adds its revisions and parent links; stemming removes every revision whose
 * nearest leaf is `limit` or more edits below it. Leaves keep the first value they got and
 * revisions with children keep none.
 *
 * It also builds random "universes": histories where every revision id has exactly one
 * parent, as with content-derived ids, from which tests draw paths in any order.
 */
import fc from 'fast-check';
import type { Rev, RevPath } from '../../src/document/rev.js';
import { compareRevIds } from '../../src/document/rev.js';
import type { RevNode, RevTree } from '../../src/document/rev-tree.js';

export interface Leaf {
  readonly deleted: boolean;
  readonly tag: number;
}

interface ModelRevision {
  readonly pos: number;
  readonly id: string;
  parent: string | null;
  value: Leaf | null;
}

export function revKey(pos: number, id: string): string {
  return `${pos}:${id}`;
}

/** `[key, parentKey, value]` rows sorted by key: a form both the model and trees give. */
export type Flattened = [string, string | null, Leaf | null][];

function compareRows(a: Flattened[number], b: Flattened[number]): number {
  if (a[0] === b[0]) return 0;
  return a[0] < b[0] ? -1 : 1;
}

export class RevTreeModel {
  readonly revisions = new Map<string, ModelRevision>();

  private children(): Map<string, string[]> {
    const children = new Map<string, string[]>();
    for (const [key, revision] of this.revisions) {
      if (revision.parent === null) continue;
      const list = children.get(revision.parent) ?? [];
      list.push(key);
      children.set(revision.parent, list);
    }
    return children;
  }

  merge(path: RevPath, value: Leaf): void {
    const oldest = path.start - path.ids.length + 1;
    let parent: string | null = null;
    for (let i = path.ids.length - 1; i >= 0; i--) {
      const pos = oldest + (path.ids.length - 1 - i);
      const id = path.ids[i]!;
      const key = revKey(pos, id);
      let revision = this.revisions.get(key);
      if (revision === undefined) {
        revision = { pos, id, parent: null, value: i === 0 ? value : null };
        this.revisions.set(key, revision);
      }
      if (parent !== null) {
        if (revision.parent !== null && revision.parent !== parent) {
          throw new Error(`model: ${key} has two parents`);
        }
        revision.parent = parent;
      }
      parent = key;
    }
    const children = this.children();
    for (const [key, revision] of this.revisions) {
      if (children.has(key)) revision.value = null;
    }
  }

  stem(limit: number): void {
    const children = this.children();
    const nearest = new Map<string, number>();
    const nearestLeaf = (key: string): number => {
      const known = nearest.get(key);
      if (known !== undefined) return known;
      const below = children.get(key) ?? [];
      const distance = below.length === 0 ? 0 : 1 + Math.min(...below.map(nearestLeaf));
      nearest.set(key, distance);
      return distance;
    };
    for (const key of [...this.revisions.keys()]) {
      if (nearestLeaf(key) >= limit) this.revisions.delete(key);
    }
    for (const revision of this.revisions.values()) {
      if (revision.parent !== null && !this.revisions.has(revision.parent)) revision.parent = null;
    }
  }

  leaves(): { rev: Rev; value: Leaf }[] {
    const children = this.children();
    const leaves: { rev: Rev; value: Leaf }[] = [];
    for (const [key, revision] of this.revisions) {
      if (children.has(key)) continue;
      if (revision.value === null) throw new Error(`model: leaf ${key} without value`);
      leaves.push({ rev: { pos: revision.pos, id: revision.id }, value: revision.value });
    }
    return leaves;
  }

  /** Leaves in winner order: live first, then higher position, then higher id. */
  sortedLeaves(): { rev: Rev; value: Leaf }[] {
    return this.leaves().sort((a, b) => {
      if (a.value.deleted !== b.value.deleted) return a.value.deleted ? 1 : -1;
      if (a.rev.pos !== b.rev.pos) return b.rev.pos - a.rev.pos;
      return compareRevIds(b.rev.id, a.rev.id);
    });
  }

  has(rev: Rev): boolean {
    return this.revisions.has(revKey(rev.pos, rev.id));
  }

  /** Ids from `rev` up to its oldest known ancestor. */
  ancestry(rev: Rev): string[] {
    const ids: string[] = [];
    let key: string | null = revKey(rev.pos, rev.id);
    while (key !== null) {
      const revision: ModelRevision = this.revisions.get(key)!;
      ids.push(revision.id);
      key = revision.parent;
    }
    return ids;
  }

  flatten(): Flattened {
    return [...this.revisions.entries()]
      .map(([key, r]): [string, string | null, Leaf | null] => [key, r.parent, r.value])
      .sort(compareRows);
  }
}

/** Flattens a tree into the model's row form. */
export function flattenTree(tree: RevTree<Leaf>): Flattened {
  const rows: Flattened = [];
  const visit = (node: RevNode<Leaf>, pos: number, parent: string | null) => {
    const key = revKey(pos, node.id);
    rows.push([key, parent, node.value]);
    for (const child of node.children) visit(child, pos + 1, key);
  };
  for (const root of tree) visit(root.node, root.pos, null);
  return rows.sort(compareRows);
}

export interface UniverseRevision {
  readonly pos: number;
  readonly id: string;
  readonly parent: number | null;
  readonly deleted: boolean;
}

/**
 * Random histories: revision 0 and some others start at position 1, every other revision
 * extends an earlier one. Ids are unique: hex digests and short text ids, mixed, so sibling
 * order exercises both forms.
 */
export const universeArbitrary = fc
  .array(
    fc.record({
      parentPick: fc.nat(),
      newRoot: fc.nat({ max: 9 }),
      hexId: fc.boolean(),
      deleted: fc.nat({ max: 3 }),
    }),
    { minLength: 1, maxLength: 24 },
  )
  .map((specs) => {
    const universe: UniverseRevision[] = [];
    specs.forEach((spec, index) => {
      const parent = index === 0 || spec.newRoot === 0 ? null : spec.parentPick % index;
      const pos = parent === null ? 1 : universe[parent]!.pos + 1;
      const id = spec.hexId ? hexId(index) : `r${index}`;
      universe.push({ pos, id, parent, deleted: spec.deleted === 0 });
    });
    return universe;
  });

function hexId(index: number): string {
  // Any fixed, distinct 32-hex-digit strings will do; a counter in hex keeps them readable.
  return index.toString(16).padStart(32, '0');
}

/** Returns the path ending at revision `index`, with its newest `keep` revisions (at least one). */
export function pathTo(
  universe: readonly UniverseRevision[],
  index: number,
  keep: number,
): RevPath {
  const ids: string[] = [];
  let current: number | null = index;
  while (current !== null && ids.length < keep) {
    ids.push(universe[current]!.id);
    current = universe[current]!.parent;
  }
  return { start: universe[index]!.pos, ids };
}

/** Picks of paths into a universe: which revision ends the path and how much history it has. */
export const pathPicksArbitrary = fc.array(
  fc.record({ revision: fc.nat(), keep: fc.integer({ min: 1, max: 30 }) }),
  { minLength: 1, maxLength: 30 },
);
