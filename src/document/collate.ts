/**
 * Orders of JSON values that CouchDB 3.x uses, for values already parsed with `JSON.parse`.
 *
 * `compareJson` is CouchDB's view collation (couch_ejson_compare): null < false < true <
 * numbers < strings < arrays < objects; numbers by value; strings by ICU's root collation;
 * arrays element by element, a prefix first; objects member by member (key, then value), a
 * prefix first.
 *
 * `compareRaw` is Erlang's term order over CouchDB's JSON terms, which Mango uses for `_id`:
 * numbers < false < null < true < objects < arrays < strings, strings bytewise in UTF-8.
 *
 * NOTE: `Intl.Collator` replaces ICU's root collator. Both follow the Unicode Collation
 * Algorithm, but their versions may differ for rare characters. Values parsed with
 * `JSON.parse` also lose what CouchDB keeps: integers beyond 2^53 are rounded, a repeated key
 * keeps only its last value, and integer-like keys move to the front of an object.
 */

const collator = new Intl.Collator('und', { usage: 'sort', sensitivity: 'variant' });

const RANK_NULL = 1;
const RANK_FALSE = 2;
const RANK_TRUE = 3;
const RANK_NUMBER = 4;
const RANK_STRING = 5;
const RANK_ARRAY = 6;
const RANK_OBJECT = 7;

function collationRank(value: unknown): number {
  if (value === null) return RANK_NULL;
  if (value === false) return RANK_FALSE;
  if (value === true) return RANK_TRUE;
  if (typeof value === 'number') return RANK_NUMBER;
  if (typeof value === 'string') return RANK_STRING;
  if (Array.isArray(value)) return RANK_ARRAY;
  return RANK_OBJECT;
}

function sign(order: number): number {
  if (order < 0) return -1;
  return order > 0 ? 1 : 0;
}

function compareNumbers(a: number, b: number): number {
  if (a === b) return 0;
  return a < b ? -1 : 1;
}

/** Compares two strings by Unicode code point, which is the order of their UTF-8 bytes. */
export function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return compareNumbers(a.length, b.length);
}

/** CouchDB's view collation of two parsed JSON values. */
export function compareJson(a: unknown, b: unknown): number {
  const rankA = collationRank(a);
  const rankB = collationRank(b);
  if (rankA !== rankB) return rankA < rankB ? -1 : 1;
  switch (rankA) {
    case RANK_NUMBER:
      return compareNumbers(a as number, b as number);
    case RANK_STRING:
      return sign(collator.compare(a as string, b as string));
    case RANK_ARRAY:
      return compareSequences(a as unknown[], b as unknown[], compareJson);
    case RANK_OBJECT:
      return compareObjects(
        a as object,
        b as object,
        (x, y) => sign(collator.compare(x, y)),
        compareJson,
      );
    default:
      return 0;
  }
}

function compareSequences(
  a: readonly unknown[],
  b: readonly unknown[],
  compare: (x: unknown, y: unknown) => number,
): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const order = compare(a[i], b[i]);
    if (order !== 0) return order;
  }
  return compareNumbers(a.length, b.length);
}

function compareObjects(
  a: object,
  b: object,
  compareKeys: (x: string, y: string) => number,
  compareValues: (x: unknown, y: unknown) => number,
): number {
  const entriesA = Object.entries(a);
  const entriesB = Object.entries(b);
  const length = Math.min(entriesA.length, entriesB.length);
  for (let i = 0; i < length; i++) {
    const [keyA, valueA] = entriesA[i]!;
    const [keyB, valueB] = entriesB[i]!;
    const keyOrder = compareKeys(keyA, keyB);
    if (keyOrder !== 0) return keyOrder;
    const valueOrder = compareValues(valueA, valueB);
    if (valueOrder !== 0) return valueOrder;
  }
  return compareNumbers(entriesA.length, entriesB.length);
}

const RAW_NUMBER = 0;
const RAW_FALSE = 1;
const RAW_NULL = 2;
const RAW_TRUE = 3;
const RAW_OBJECT = 4;
const RAW_ARRAY = 5;
const RAW_STRING = 6;

function rawRank(value: unknown): number {
  if (typeof value === 'number') return RAW_NUMBER;
  if (value === false) return RAW_FALSE;
  if (value === null) return RAW_NULL;
  if (value === true) return RAW_TRUE;
  if (typeof value === 'string') return RAW_STRING;
  if (Array.isArray(value)) return RAW_ARRAY;
  return RAW_OBJECT;
}

/** Erlang's term order over two parsed JSON values. */
export function compareRaw(a: unknown, b: unknown): number {
  const rankA = rawRank(a);
  const rankB = rawRank(b);
  if (rankA !== rankB) return rankA < rankB ? -1 : 1;
  switch (rankA) {
    case RAW_NUMBER:
      return compareNumbers(a as number, b as number);
    case RAW_STRING:
      return compareCodePoints(a as string, b as string);
    case RAW_ARRAY:
      return compareSequences(a as unknown[], b as unknown[], compareRaw);
    case RAW_OBJECT:
      return compareObjects(a as object, b as object, compareCodePoints, compareRaw);
    default:
      return 0;
  }
}

/** Structural equality of parsed JSON values, objects compared in key order. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((item, i) => jsonEqual(item, other[i]));
  }
  const entriesA = Object.entries(a);
  const entriesB = Object.entries(b);
  if (entriesA.length !== entriesB.length) return false;
  return entriesA.every(
    ([key, value], i) => key === entriesB[i]![0] && jsonEqual(value, entriesB[i]![1]),
  );
}
