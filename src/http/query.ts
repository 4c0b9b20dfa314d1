/**
 * Query parameters as CouchDB 3.x reads them: booleans (`true`/`false`), non-negative
 * integers, and JSON-encoded values (`key`, `startkey`, `keys`, `open_revs`, ...), with
 * CouchDB's aliases (`start_key` for `startkey`, `end_key` for `endkey`). A repeated
 * parameter takes its last value, as CouchDB's option parsing does.
 *
 * Invalid values raise 400 `query_parse_error` naming the parameter and the value.
 * JSON-encoded values are validated as JSON bytes (src/document/json.ts) before they are
 * decoded, so a parameter is never half-read; `jsonRaw` keeps the exact bytes of each element
 * for echoing numbers without losing precision.
 */
import { decodeSpan, minifyJson, type ScannedValue, scanJson } from '../document/json.js';
import { errors } from '../util/couch-error.js';

/** A JSON value from a query parameter: its decoded value and its exact minified bytes. */
export interface RawJsonValue {
  readonly value: unknown;
  readonly raw: Buffer;
}

export class QueryParams {
  constructor(
    private readonly params: URLSearchParams,
    private readonly maxJsonDepth: number,
  ) {}

  /** The last value of the first present name among `names`, or undefined. */
  string(...names: string[]): string | undefined {
    let found: string | undefined;
    for (const name of names) {
      const values = this.params.getAll(name);
      if (values.length > 0) found = values[values.length - 1];
    }
    return found;
  }

  has(name: string): boolean {
    return this.params.has(name);
  }

  /** `true` or `false`; anything else raises `query_parse_error`. */
  boolean(name: string, fallback: boolean): boolean {
    const value = this.string(name);
    if (value === undefined) return fallback;
    if (value === 'true') return true;
    if (value === 'false') return false;
    throw errors.queryParseError(`Invalid boolean parameter ${name}: "${value}"`);
  }

  /** A non-negative decimal integer within `max`. */
  integer(name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.string(name);
    if (value === undefined) return fallback;
    const parsed = /^[0-9]+$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(parsed) || parsed > max) {
      throw errors.queryParseError(`Invalid integer parameter ${name}: "${value}"`);
    }
    return parsed;
  }

  /** A JSON-encoded parameter (last of `names` present), decoded, or undefined when absent. */
  json(...names: string[]): RawJsonValue | undefined {
    const text = this.string(...names);
    if (text === undefined) return undefined;
    const scanned = this.scan(names[0]!, text);
    return { value: decodeSpan(scanned.bytes, scanned.start, scanned.end), raw: rawOf(scanned) };
  }

  /** A JSON array parameter; each element with its exact bytes. */
  jsonArray(name: string): RawJsonValue[] | undefined {
    const text = this.string(name);
    if (text === undefined) return undefined;
    const scanned = this.scan(name, text);
    if (scanned.kind !== 'array') {
      throw errors.queryParseError(`Parameter ${name} must be a JSON array`);
    }
    return scanned.elements.map((span) => ({
      value: decodeSpan(scanned.bytes, span.start, span.end),
      raw: minifyJson(scanned.bytes, span.start, span.end),
    }));
  }

  private scan(name: string, text: string): ScannedValue {
    try {
      return scanJson(Buffer.from(text, 'utf8'), { maxDepth: this.maxJsonDepth });
    } catch {
      throw errors.queryParseError(`Invalid JSON in parameter ${name}: ${text}`);
    }
  }
}

function rawOf(scanned: ScannedValue): Buffer {
  return minifyJson(scanned.bytes, scanned.start, scanned.end);
}
