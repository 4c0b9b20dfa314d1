/**
 * Mango selectors for `_changes?filter=_selector`, matched against parsed documents, as
 * CouchDB 3.x's mango_selector normalizes and matches them.
 *
 * Operators: `$eq $ne $gt $gte $lt $lte` (CouchDB collation, see collate.ts; the `_id` field
 * compares in Erlang term order, bytewise for strings), `$exists $type $in $nin $and $or $not
 * $nor $all $elemMatch $allMatch $size $regex $mod`, implicit equality (`{"a": 1}`), implicit
 * `$and` (several members in one object) and nested paths (`{"a": {"b": 1}}` or `"a.b"`; a
 * path segment that is a number indexes an array; `\.` escapes a dot).
 *
 * Compilation follows CouchDB's three normalization steps: operators are checked and made
 * explicit, field names are pushed down to the operators, and negations are pushed down to the
 * conditions (`$not` of `$gt` becomes `$lte`, De Morgan for `$and`/`$or`/`$nor`). So a negated
 * condition on a missing field does not match, except `$exists: false`, exactly as in CouchDB.
 *
 * Errors raise `bad_request` with Mango's reason, the error that `_changes` returns. Two
 * deviations: bad arguments are shown as JSON rather than as Erlang terms, and `$text` (which
 * needs a full-text index) is rejected as unsupported, along with `$where` and the geospatial
 * operators.
 *
 * NOTE: `$regex` compiles the pattern as a JavaScript regular expression (with the `u` flag
 * when the pattern allows it) where CouchDB uses PCRE; common patterns behave the same, but
 * PCRE-only syntax is rejected. Documents are parsed with `JSON.parse`, so numbers beyond
 * 2^53 compare rounded.
 */
import { errors } from '../util/couch-error.js';
import { compareJson, compareRaw, jsonEqual } from './collate.js';

type Compare = (a: unknown, b: unknown) => number;
type Json = unknown;
type JsonObject = Record<string, Json>;

/** A compiled selector. */
export interface Selector {
  /** True when the parsed document (or any JSON value) matches. */
  matches(value: Json): boolean;
}

/** A normalized selector: one operator or one field per node, as in CouchDB. */
type Node =
  | { readonly op: '$and' | '$or'; readonly args: readonly Node[] }
  | { readonly op: '$not'; readonly arg: Node }
  | { readonly op: '$nor'; readonly args: readonly Node[] }
  | { readonly op: '$elemMatch' | '$allMatch'; readonly arg: Node }
  | {
      readonly op: '$field';
      readonly field: string;
      readonly path: readonly string[];
      readonly cond: Node;
    }
  | { readonly op: Comparison; readonly value: Json }
  | { readonly op: '$in' | '$nin' | '$all'; readonly values: readonly Json[] }
  | { readonly op: '$exists'; readonly value: boolean }
  | { readonly op: '$type'; readonly value: string }
  | { readonly op: '$mod'; readonly divisor: number; readonly remainder: number }
  | { readonly op: '$regex'; readonly source: string; readonly regex: RegExp }
  | { readonly op: '$size'; readonly value: number };

type Comparison = '$eq' | '$ne' | '$gt' | '$gte' | '$lt' | '$lte';

const COMPARISONS: ReadonlySet<string> = new Set(['$eq', '$ne', '$gt', '$gte', '$lt', '$lte']);
const UNSUPPORTED: ReadonlySet<string> = new Set([
  '$text',
  '$where',
  '$geoWithin',
  '$geoIntersects',
  '$near',
  '$nearSphere',
]);

const NEGATED_COMPARISON: Readonly<Record<Comparison, Comparison>> = {
  $lt: '$gte',
  $lte: '$gt',
  $eq: '$ne',
  $ne: '$eq',
  $gte: '$lt',
  $gt: '$lte',
};

/** Field name of a condition that applies to the value itself (inside `$elemMatch`). */
const SELF_FIELD = '';

function isObject(value: Json): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function badArgument(op: string, argument: Json): never {
  throw errors.invalidSelector(`Bad argument for operator ${op}: ${JSON.stringify(argument)}`);
}

/** Compiles a selector (the parsed `selector` member of the request body). */
export function compileSelector(selector: Json): Selector {
  if (!isObject(selector)) throw errors.selectorNotObject();
  if (Object.keys(selector).length === 0) return { matches: () => true };
  const normalized = pushNegations(pushFields(checkOperators(selector), SELF_FIELD));
  if (normalized.op === '$field' && normalized.field === SELF_FIELD) {
    throw errors.invalidSelector('One or more conditions is missing a field name.');
  }
  return { matches: (value) => match(normalized, value, compareJson) };
}

/** A selector after the first step: operators checked, fields not yet pushed down. */
type Checked =
  | {
      readonly kind: 'combine';
      readonly op: '$and' | '$or' | '$nor';
      readonly args: readonly Checked[];
    }
  | {
      readonly kind: 'wrap';
      readonly op: '$not' | '$elemMatch' | '$allMatch';
      readonly arg: Checked;
    }
  | { readonly kind: 'field'; readonly field: string; readonly cond: Checked }
  | { readonly kind: 'terminal'; readonly node: Node };

/** Step 1: checks each operator's argument and makes implicit `$eq` and `$and` explicit. */
function checkOperators(selector: Json): Checked {
  if (!isObject(selector)) return { kind: 'terminal', node: { op: '$eq', value: selector } };
  const keys = Object.keys(selector);
  if (keys.length === 0) return { kind: 'terminal', node: { op: '$eq', value: selector } };
  if (keys.length > 1) {
    const args = keys.map((key) => checkOperators({ [key]: selector[key] }));
    return { kind: 'combine', op: '$and', args };
  }
  const key = keys[0]!;
  const argument = selector[key];
  if (!key.startsWith('$')) return { kind: 'field', field: key, cond: checkOperators(argument) };
  return checkOperator(key, argument);
}

function checkOperator(op: string, argument: Json): Checked {
  switch (op) {
    case '$and':
    case '$or':
    case '$nor':
      if (!Array.isArray(argument)) return badArgument(op, argument);
      return { kind: 'combine', op, args: argument.map(checkOperators) };
    case '$not':
    case '$elemMatch':
    case '$allMatch':
      if (!isObject(argument)) return badArgument(op, argument);
      return { kind: 'wrap', op, arg: checkOperators(argument) };
    default:
      return { kind: 'terminal', node: checkTerminal(op, argument) };
  }
}

function checkTerminal(op: string, argument: Json): Node {
  switch (op) {
    case '$in':
    case '$nin':
    case '$all':
      if (!Array.isArray(argument)) return badArgument(op, argument);
      return { op, values: argument };
    case '$exists':
      if (typeof argument !== 'boolean') return badArgument(op, argument);
      return { op, value: argument };
    case '$type':
      if (typeof argument !== 'string') return badArgument(op, argument);
      return { op, value: argument };
    case '$mod':
      return checkMod(argument);
    case '$regex':
      return { op, source: String(argument), regex: compileRegex(argument) };
    case '$size':
      if (!Number.isSafeInteger(argument) || (argument as number) < 0) {
        return badArgument(op, argument);
      }
      return { op, value: argument as number };
    default:
      if (COMPARISONS.has(op)) return { op: op as Comparison, value: argument };
      if (UNSUPPORTED.has(op)) throw errors.invalidSelector(`Unsupported operator: ${op}`);
      throw errors.invalidSelector(`Invalid operator: ${op}`);
  }
}

function checkMod(argument: Json): Node {
  if (!Array.isArray(argument) || argument.length !== 2) return badArgument('$mod', argument);
  const [divisor, remainder] = argument as Json[];
  // CouchDB takes a divisor of 0 and then fails while matching; Divan rejects it up front.
  if (!Number.isSafeInteger(divisor) || !Number.isSafeInteger(remainder) || divisor === 0) {
    return badArgument('$mod', argument);
  }
  return { op: '$mod', divisor: divisor as number, remainder: remainder as number };
}

function compileRegex(argument: Json): RegExp {
  if (typeof argument !== 'string') return badArgument('$regex', argument);
  try {
    return new RegExp(argument, 'u');
  } catch {
    try {
      return new RegExp(argument);
    } catch {
      return badArgument('$regex', argument);
    }
  }
}

/** Parses a field path as mango_util:parse_field does. */
function parseFieldPath(field: string): string[] {
  if (!field.includes('\\')) return field.split('.');
  const segments = field.split(/(?<!\\)\./);
  return segments.map((segment) => {
    if (segment === '') throw errors.invalidSelector(`Invalid field name: ${field}`);
    return segment.replaceAll('\\', '');
  });
}

function fieldNode(field: string, cond: Node): Node {
  const path = field === SELF_FIELD ? [] : parseFieldPath(field);
  return { op: '$field', field, path, cond };
}

function joinField(path: string, field: string): string {
  return path === SELF_FIELD ? field : `${path}.${field}`;
}

/**
 * Step 2: pushes field names down to the operators, so `{"a": {"$gt": 1}}` becomes a `$gt`
 * under field `a`, and `{"a": {"b": 1}}` an `$eq` under `a.b`. `$elemMatch` and `$allMatch`
 * start a new path for their argument.
 */
function pushFields(selector: Checked, path: string): Node {
  switch (selector.kind) {
    case 'field':
      return pushFields(selector.cond, joinField(path, selector.field));
    case 'combine':
      return { op: selector.op, args: selector.args.map((arg) => pushFields(arg, path)) };
    case 'wrap':
      if (selector.op === '$not') return { op: '$not', arg: pushFields(selector.arg, path) };
      return fieldNode(path, { op: selector.op, arg: pushFields(selector.arg, SELF_FIELD) });
    case 'terminal':
      return fieldNode(path, selector.node);
  }
}

/** Step 3: removes `$not` and `$nor` where they can be pushed into the conditions. */
function pushNegations(node: Node): Node {
  switch (node.op) {
    case '$not':
      return negate(node.arg);
    case '$nor':
      return { op: '$and', args: node.args.map(negate) };
    case '$and':
    case '$or':
      return { op: node.op, args: node.args.map(pushNegations) };
    case '$elemMatch':
    case '$allMatch':
      return { op: node.op, arg: pushNegations(node.arg) };
    default:
      return node;
  }
}

function negate(node: Node): Node {
  switch (node.op) {
    case '$not':
      return pushNegations(node.arg);
    case '$nor':
      return { op: '$or', args: node.args.map(pushNegations) };
    case '$and':
      return { op: '$or', args: node.args.map(negate) };
    case '$or':
      return { op: '$and', args: node.args.map(negate) };
    case '$field':
      return { ...node, cond: negate(node.cond) };
    case '$in':
      return { op: '$nin', values: node.values };
    case '$nin':
      return { op: '$in', values: node.values };
    case '$exists':
      return { op: '$exists', value: !node.value };
    case '$eq':
    case '$ne':
    case '$gt':
    case '$gte':
    case '$lt':
    case '$lte':
      return { op: NEGATED_COMPARISON[node.op], value: node.value };
    default:
      return { op: '$not', arg: node };
  }
}

type FieldLookup = { readonly found: true; readonly value: Json } | { readonly found: false };

const NOT_FOUND: FieldLookup = { found: false };
const ARRAY_INDEX = /^[+-]?[0-9]+$/;

/** Follows a field path as mango_doc:get_field does (numbers index arrays). */
function lookupField(value: Json, path: readonly string[]): FieldLookup {
  let current = value;
  for (const segment of path) {
    if (isObject(current)) {
      if (!Object.hasOwn(current, segment)) return NOT_FOUND;
      current = current[segment];
    } else if (Array.isArray(current)) {
      if (!ARRAY_INDEX.test(segment)) return NOT_FOUND;
      const index = Number(segment);
      if (index < 0 || index >= current.length) return NOT_FOUND;
      current = current[index];
    } else {
      return NOT_FOUND;
    }
  }
  return { found: true, value: current };
}

function jsonType(value: Json): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  return typeof value;
}

function match(node: Node, value: Json, compare: Compare): boolean {
  switch (node.op) {
    case '$and':
      return node.args.every((arg) => match(arg, value, compare));
    case '$or':
      return node.args.some((arg) => match(arg, value, compare));
    case '$nor':
      return !node.args.some((arg) => match(arg, value, compare));
    case '$not':
      return !match(node.arg, value, compare);
    case '$field':
      return matchField(node, value, compare);
    case '$elemMatch':
      return Array.isArray(value) && value.some((item) => match(node.arg, item, compare));
    case '$allMatch':
      return (
        Array.isArray(value) &&
        value.length > 0 &&
        value.every((item) => match(node.arg, item, compare))
      );
    default:
      return matchTerminal(node, value, compare);
  }
}

function matchField(node: Extract<Node, { op: '$field' }>, value: Json, compare: Compare): boolean {
  const lookup = lookupField(value, node.path);
  if (!lookup.found) return node.cond.op === '$exists' && !node.cond.value;
  const fieldCompare = node.field === '_id' ? compareRaw : compare;
  return match(node.cond, lookup.value, fieldCompare);
}

function matchTerminal(node: Node, value: Json, compare: Compare): boolean {
  switch (node.op) {
    case '$eq':
      return compare(value, node.value) === 0;
    case '$ne':
      return compare(value, node.value) !== 0;
    case '$gt':
      return compare(value, node.value) > 0;
    case '$gte':
      return compare(value, node.value) >= 0;
    case '$lt':
      return compare(value, node.value) < 0;
    case '$lte':
      return compare(value, node.value) <= 0;
    case '$in':
      return matchIn(node.values, value, compare);
    case '$nin':
      if (Array.isArray(value)) return !matchIn(node.values, value, compare);
      return node.values.every((candidate) => compare(value, candidate) !== 0);
    case '$all':
      return matchAll(node.values, value);
    case '$exists':
      return node.value;
    case '$type':
      return jsonType(value) === node.value;
    case '$mod':
      return Number.isInteger(value) && (value as number) % node.divisor === node.remainder;
    case '$regex':
      return typeof value === 'string' && node.regex.test(value);
    case '$size':
      return Array.isArray(value) && value.length === node.value;
    default:
      return false;
  }
}

function matchIn(candidates: readonly Json[], value: Json, compare: Compare): boolean {
  if (Array.isArray(value)) {
    return candidates.some((candidate) => value.some((item) => compare(item, candidate) === 0));
  }
  return candidates.some((candidate) => compare(value, candidate) === 0);
}

/** `$all`: every candidate is an element, or the only candidate is an array equal to the value. */
function matchAll(candidates: readonly Json[], value: Json): boolean {
  if (!Array.isArray(value)) return false;
  if (candidates.every((candidate) => value.some((item) => jsonEqual(item, candidate)))) {
    return true;
  }
  const only = candidates[0];
  return candidates.length === 1 && Array.isArray(only) && jsonEqual(only, value);
}
