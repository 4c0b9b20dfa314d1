/**
 * JSON handled as bytes. Document bodies are stored as the bytes the client sent, minified.
 * The write path never decodes them into JavaScript values, so numbers keep every digit
 * (integers beyond 2^53 included), string escapes stay as written and key order is kept.
 *
 * What this module offers:
 * - `scanJson` validates a span of bytes (UTF-8, RFC 8259 grammar, a maximum nesting depth)
 *   and returns the raw byte spans of the top-level members of an object, or of the top-level
 *   elements of an array, with member keys decoded. `scanObject` also requires an object.
 * - `decodeMember` and `decodeSpan` run `JSON.parse` on one small span (for special members).
 * - `minifyJson` drops insignificant whitespace and changes no other byte.
 * - `buildObject` writes an object made of some of the members of a scanned object, minified.
 * - `spliceObject` wraps a minified object's members with extra members before and after,
 *   by copying bytes, without decoding the body.
 *
 * Invariants: spans are `[start, end)` offsets into `ScannedValue.bytes`. A rejected input
 * raises CouchDB's `bad_request` / `invalid UTF-8 JSON` (or `jsonTooDeep` for nesting), never
 * a partial result. Results of `buildObject` and `minifyJson` may share memory with the input
 * when nothing had to change, so callers must not modify the input afterwards.
 *
 * What it does not do: handle CouchDB's special `_` members (see document.ts and render.ts),
 * or convert numbers.
 *
 * JSON accepted here is RFC 8259 JSON with the stricter choices of jiffy, CouchDB's decoder:
 * control characters must be escaped in strings, a `\u` escape of a UTF-16 surrogate must be a
 * high surrogate followed by a low one, and the bytes must be valid UTF-8 (no byte order mark).
 */
import { isUtf8 } from 'node:buffer';
import { assert } from '../util/assert.js';
import { errors } from '../util/couch-error.js';

/** Nesting depth (objects and arrays) accepted when the caller gives no maximum. */
export const DEFAULT_MAX_JSON_DEPTH = 256;

export type JsonKind = 'object' | 'array' | 'string' | 'number' | 'boolean' | 'null';

/** A raw value inside `ScannedValue.bytes`. */
export interface JsonSpan {
  /** Offset of the first byte of the value. */
  readonly start: number;
  /** Offset just past the value. */
  readonly end: number;
  /** True when the span contains no insignificant whitespace, so it is already minified. */
  readonly compact: boolean;
}

/** A top-level member of a scanned object: `start` is its key's opening quote. */
export interface JsonMember extends JsonSpan {
  /** The key, decoded (escapes resolved). */
  readonly key: string;
  /** Offset of the first byte of the value; `end` is just past the value. */
  readonly valueStart: number;
}

/** A validated JSON value and the spans of its top-level members or elements. */
export interface ScannedValue {
  readonly bytes: Buffer;
  readonly kind: JsonKind;
  readonly start: number;
  readonly end: number;
  readonly compact: boolean;
  /** Members in the order they appear, duplicates included; empty unless `kind` is object. */
  readonly members: readonly JsonMember[];
  /** Elements in order; empty unless `kind` is array. */
  readonly elements: readonly JsonSpan[];
}

export interface ScanOptions {
  /** First byte of the span to scan; 0 when absent. */
  readonly start?: number;
  /** End of the span to scan; the input's length when absent. */
  readonly end?: number;
  /** Maximum nesting depth; `DEFAULT_MAX_JSON_DEPTH` when absent. */
  readonly maxDepth?: number;
}

const TAB = 0x09;
const NEWLINE = 0x0a;
const RETURN = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const PLUS = 0x2b;
const COMMA = 0x2c;
const MINUS = 0x2d;
const DOT = 0x2e;
const SLASH = 0x2f;
const DIGIT_ZERO = 0x30;
const DIGIT_NINE = 0x39;
const COLON = 0x3a;
const UPPER_E = 0x45;
const OPEN_BRACKET = 0x5b;
const BACKSLASH = 0x5c;
const CLOSE_BRACKET = 0x5d;
const LOWER_B = 0x62;
const LOWER_E = 0x65;
const LOWER_F = 0x66;
const LOWER_N = 0x6e;
const LOWER_R = 0x72;
const LOWER_T = 0x74;
const LOWER_U = 0x75;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const FIRST_NON_CONTROL = 0x20;
const FIRST_NON_ASCII = 0x80;

const HIGH_SURROGATE_FIRST = 0xd800;
const LOW_SURROGATE_FIRST = 0xdc00;
const LOW_SURROGATE_LAST = 0xdfff;
/** Length of `\uXXXX`. */
const UNICODE_ESCAPE_LENGTH = 6;
const HEX_DIGITS_PER_ESCAPE = 4;
const HEX_RADIX = 16;

/** Flags returned by `Scanner.scanString`. */
const STRING_ESCAPED = 1;
const STRING_NON_ASCII = 2;

const CONTAINER_OBJECT = 1;
const CONTAINER_ARRAY = 2;

const LITERAL_TRUE = Buffer.from('true');
const LITERAL_FALSE = Buffer.from('false');
const LITERAL_NULL = Buffer.from('null');

/** Returns `bytes` as a Buffer over the same memory. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

function isWhitespace(byte: number): boolean {
  return byte === SPACE || byte === NEWLINE || byte === RETURN || byte === TAB;
}

function isDigit(byte: number): boolean {
  return byte >= DIGIT_ZERO && byte <= DIGIT_NINE;
}

function hexValue(byte: number): number {
  if (byte >= DIGIT_ZERO && byte <= DIGIT_NINE) return byte - DIGIT_ZERO;
  const lower = byte | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * The container kinds of the open objects and arrays, indexed by depth. One buffer serves
 * every scan: a scan runs to completion before the next starts, and it calls no code that
 * could start another.
 */
let sharedContainers = new Uint8Array(DEFAULT_MAX_JSON_DEPTH + 1);

function containerStack(size: number): Uint8Array {
  if (sharedContainers.length < size) sharedContainers = new Uint8Array(size);
  return sharedContainers;
}

/**
 * Validates one JSON value and records the spans of its top-level members or elements. The
 * walk is iterative (an explicit container stack), so nesting costs no call stack.
 */
class Scanner {
  private pos: number;
  /** Count of insignificant whitespace bytes skipped so far. */
  private whitespace = 0;
  private readonly containers: Uint8Array;
  private depth = 0;
  // The top-level member or element being scanned: its offsets, and the whitespace count at
  // each of them (so that a span without whitespace is known to be minified).
  private memberStart = -1;
  private memberKey = '';
  private memberWhitespace = 0;
  private valueStart = -1;
  private valueWhitespace = 0;

  readonly members: JsonMember[] = [];
  readonly elements: JsonSpan[] = [];

  constructor(
    private readonly bytes: Buffer,
    start: number,
    private readonly end: number,
    private readonly maxDepth: number,
  ) {
    this.pos = start;
    this.containers = containerStack(maxDepth + 1);
  }

  scan(): ScannedValue {
    const first = this.skipWhitespace();
    const start = this.pos;
    const whitespaceBefore = this.whitespace;
    const kind = this.kindAt(first);
    this.scanValueTree();
    const end = this.pos;
    const compact = this.whitespace === whitespaceBefore;
    this.skipWhitespace();
    if (this.pos !== this.end) this.fail();
    return {
      bytes: this.bytes,
      kind,
      start,
      end,
      compact,
      members: this.members,
      elements: this.elements,
    };
  }

  private fail(): never {
    throw errors.invalidJson();
  }

  private kindAt(byte: number): JsonKind {
    if (byte === OPEN_BRACE) return 'object';
    if (byte === OPEN_BRACKET) return 'array';
    if (byte === QUOTE) return 'string';
    if (byte === LOWER_T || byte === LOWER_F) return 'boolean';
    if (byte === LOWER_N) return 'null';
    if (byte === MINUS || isDigit(byte)) return 'number';
    return this.fail();
  }

  /** Skips whitespace and returns the next byte, or -1 at the end of the span. */
  private skipWhitespace(): number {
    const bytes = this.bytes;
    let pos = this.pos;
    while (pos < this.end && isWhitespace(bytes[pos]!)) pos++;
    this.whitespace += pos - this.pos;
    this.pos = pos;
    return pos < this.end ? bytes[pos]! : -1;
  }

  private openContainer(kind: number): void {
    this.depth++;
    if (this.depth > this.maxDepth) throw errors.jsonTooDeep(this.maxDepth);
    this.containers[this.depth] = kind;
    this.pos++;
  }

  /**
   * Scans the value at `pos` and everything nested in it. The outer loop starts one value;
   * the inner loop closes containers and moves to the next member or element.
   */
  private scanValueTree(): void {
    for (;;) {
      const byte = this.pos < this.end ? this.bytes[this.pos]! : -1;
      if (this.depth === 1) {
        this.valueStart = this.pos;
        this.valueWhitespace = this.whitespace;
      }

      if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
        const kind = byte === OPEN_BRACE ? CONTAINER_OBJECT : CONTAINER_ARRAY;
        this.openContainer(kind);
        const next = this.skipWhitespace();
        if (next !== (kind === CONTAINER_OBJECT ? CLOSE_BRACE : CLOSE_BRACKET)) {
          if (kind === CONTAINER_OBJECT) this.scanMemberKey();
          continue;
        }
        this.pos++;
        this.depth--;
      } else if (byte === QUOTE) {
        this.scanString();
      } else if (byte === MINUS || isDigit(byte)) {
        this.scanNumber();
      } else if (byte === LOWER_T) {
        this.scanLiteral(LITERAL_TRUE);
      } else if (byte === LOWER_F) {
        this.scanLiteral(LITERAL_FALSE);
      } else if (byte === LOWER_N) {
        this.scanLiteral(LITERAL_NULL);
      } else {
        this.fail();
      }

      // A value just ended: record it if it sits directly in the top container, then close
      // containers until a comma starts the next value.
      for (;;) {
        if (this.depth === 0) return;
        if (this.depth === 1) this.recordTopLevel();
        const next = this.skipWhitespace();
        const container = this.containers[this.depth];
        if (next === COMMA) {
          this.pos++;
          this.skipWhitespace();
          if (container === CONTAINER_OBJECT) this.scanMemberKey();
          break;
        }
        const closer = container === CONTAINER_OBJECT ? CLOSE_BRACE : CLOSE_BRACKET;
        if (next !== closer) this.fail();
        this.pos++;
        this.depth--;
      }
    }
  }

  /** Scans a member's key; in the top object, also remembers where the member starts. */
  private scanMemberKey(): void {
    if (this.depth !== 1) {
      this.scanKey(false);
      return;
    }
    this.memberStart = this.pos;
    this.memberWhitespace = this.whitespace;
    this.memberKey = this.scanKey(true);
  }

  /** Records the value that just ended directly inside the top container. */
  private recordTopLevel(): void {
    if (this.containers[1] === CONTAINER_OBJECT) {
      this.members.push({
        key: this.memberKey,
        start: this.memberStart,
        valueStart: this.valueStart,
        end: this.pos,
        compact: this.whitespace === this.memberWhitespace,
      });
    } else {
      this.elements.push({
        start: this.valueStart,
        end: this.pos,
        compact: this.whitespace === this.valueWhitespace,
      });
    }
  }

  /** Scans `"key" :` and leaves `pos` on the value. Decodes the key when asked. */
  private scanKey(decode: boolean): string {
    if (this.pos >= this.end || this.bytes[this.pos] !== QUOTE) this.fail();
    const start = this.pos;
    const flags = this.scanString();
    const key = decode ? decodeStringAt(this.bytes, start, this.pos, flags) : '';
    if (this.skipWhitespace() !== COLON) this.fail();
    this.pos++;
    this.skipWhitespace();
    return key;
  }

  /** Scans a string starting at its opening quote and returns STRING_* flags. */
  private scanString(): number {
    const bytes = this.bytes;
    const end = this.end;
    let pos = this.pos + 1;
    let flags = 0;
    for (;;) {
      if (pos >= end) this.fail();
      const byte = bytes[pos]!;
      if (byte === QUOTE) break;
      if (byte === BACKSLASH) {
        flags |= STRING_ESCAPED;
        pos = this.scanEscape(pos + 1);
        continue;
      }
      if (byte < FIRST_NON_CONTROL) this.fail();
      if (byte >= FIRST_NON_ASCII) flags |= STRING_NON_ASCII;
      pos++;
    }
    this.pos = pos + 1;
    return flags;
  }

  /** Checks the escape whose letter is at `pos` and returns the offset after it. */
  private scanEscape(pos: number): number {
    if (pos >= this.end) this.fail();
    const letter = this.bytes[pos]!;
    switch (letter) {
      case QUOTE:
      case BACKSLASH:
      case SLASH:
      case LOWER_B:
      case LOWER_F:
      case LOWER_N:
      case LOWER_R:
      case LOWER_T:
        return pos + 1;
      case LOWER_U:
        return this.scanUnicodeEscape(pos - 1);
      default:
        return this.fail();
    }
  }

  /** Checks `\uXXXX` (and its low surrogate when it is a high one) at `pos`. */
  private scanUnicodeEscape(pos: number): number {
    const unit = this.hexUnit(pos + 2);
    if (unit < HIGH_SURROGATE_FIRST || unit > LOW_SURROGATE_LAST) {
      return pos + UNICODE_ESCAPE_LENGTH;
    }
    if (unit >= LOW_SURROGATE_FIRST) this.fail();
    const next = pos + UNICODE_ESCAPE_LENGTH;
    if (next + 1 >= this.end) this.fail();
    if (this.bytes[next] !== BACKSLASH || this.bytes[next + 1] !== LOWER_U) this.fail();
    const low = this.hexUnit(next + 2);
    if (low < LOW_SURROGATE_FIRST || low > LOW_SURROGATE_LAST) this.fail();
    return next + UNICODE_ESCAPE_LENGTH;
  }

  private hexUnit(pos: number): number {
    if (pos + HEX_DIGITS_PER_ESCAPE > this.end) this.fail();
    let unit = 0;
    for (let i = 0; i < HEX_DIGITS_PER_ESCAPE; i++) {
      const digit = hexValue(this.bytes[pos + i]!);
      if (digit < 0) this.fail();
      unit = unit * HEX_RADIX + digit;
    }
    return unit;
  }

  /** Scans `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. */
  private scanNumber(): void {
    const bytes = this.bytes;
    const end = this.end;
    let pos = this.pos;
    if (bytes[pos] === MINUS) pos++;
    if (pos >= end || !isDigit(bytes[pos]!)) this.fail();
    if (bytes[pos] === DIGIT_ZERO) {
      pos++;
    } else {
      while (pos < end && isDigit(bytes[pos]!)) pos++;
    }
    if (pos < end && bytes[pos] === DOT) {
      pos++;
      if (pos >= end || !isDigit(bytes[pos]!)) this.fail();
      while (pos < end && isDigit(bytes[pos]!)) pos++;
    }
    if (pos < end && (bytes[pos] === LOWER_E || bytes[pos] === UPPER_E)) {
      pos++;
      if (pos < end && (bytes[pos] === PLUS || bytes[pos] === MINUS)) pos++;
      if (pos >= end || !isDigit(bytes[pos]!)) this.fail();
      while (pos < end && isDigit(bytes[pos]!)) pos++;
    }
    this.pos = pos;
  }

  private scanLiteral(literal: Buffer): void {
    const end = this.pos + literal.length;
    if (end > this.end) this.fail();
    for (let i = 0; i < literal.length; i++) {
      if (this.bytes[this.pos + i] !== literal[i]) this.fail();
    }
    this.pos = end;
  }
}

/**
 * Longest ASCII key built with `String.fromCharCode` in a loop, which is faster than a
 * `Buffer.toString` call for short keys (measured on Node 20).
 */
const SHORT_KEY_BYTES = 24;

/** Decodes the JSON string whose quotes are at `start` and `end - 1`. */
function decodeStringAt(bytes: Buffer, start: number, end: number, flags: number): string {
  if ((flags & STRING_ESCAPED) !== 0) return JSON.parse(bytes.toString('utf8', start, end));
  if ((flags & STRING_NON_ASCII) !== 0) return bytes.toString('utf8', start + 1, end - 1);
  if (end - start - 2 > SHORT_KEY_BYTES) return bytes.toString('latin1', start + 1, end - 1);
  let text = '';
  for (let pos = start + 1; pos < end - 1; pos++) text += String.fromCharCode(bytes[pos]!);
  return text;
}

/**
 * Validates `bytes[start, end)` as one JSON value and returns its top-level spans. Raises
 * `invalid UTF-8 JSON` for invalid UTF-8 or grammar, `jsonTooDeep` past `maxDepth`.
 */
export function scanJson(bytes: Uint8Array, options: ScanOptions = {}): ScannedValue {
  const buffer = asBuffer(bytes);
  const start = options.start ?? 0;
  const end = options.end ?? buffer.length;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_JSON_DEPTH;
  if (!isUtf8(start === 0 && end === buffer.length ? buffer : buffer.subarray(start, end))) {
    throw errors.invalidJson();
  }
  return new Scanner(buffer, start, end, maxDepth).scan();
}

/** Like `scanJson`, and raises `Document must be a JSON object` for any other valid value. */
export function scanObject(bytes: Uint8Array, options: ScanOptions = {}): ScannedValue {
  const scanned = scanJson(bytes, options);
  if (scanned.kind !== 'object') throw errors.notAnObject();
  return scanned;
}

/** Returns the kind of the value that starts at `start` in already validated bytes. */
export function kindAt(bytes: Uint8Array, start: number): JsonKind {
  const byte = bytes[start];
  if (byte === OPEN_BRACE) return 'object';
  if (byte === OPEN_BRACKET) return 'array';
  if (byte === QUOTE) return 'string';
  if (byte === LOWER_T || byte === LOWER_F) return 'boolean';
  if (byte === LOWER_N) return 'null';
  return 'number';
}

/** Runs `JSON.parse` on one validated span, for small values such as special members. */
export function decodeSpan(bytes: Uint8Array, start: number, end: number): unknown {
  return JSON.parse(asBuffer(bytes).toString('utf8', start, end));
}

/** Runs `JSON.parse` on the value of one member of a scanned object. */
export function decodeMember(scanned: ScannedValue, member: JsonMember): unknown {
  return decodeSpan(scanned.bytes, member.valueStart, member.end);
}

/**
 * Copies the validated JSON in `bytes[start, end)` into `out` at `outPos` without
 * insignificant whitespace. Returns the offset in `out` after the copy.
 */
function minifyInto(
  bytes: Uint8Array,
  start: number,
  end: number,
  out: Uint8Array,
  outPos: number,
): number {
  let inString = false;
  for (let pos = start; pos < end; pos++) {
    const byte = bytes[pos]!;
    if (inString) {
      out[outPos++] = byte;
      if (byte === BACKSLASH) {
        pos++;
        out[outPos++] = bytes[pos]!;
      } else if (byte === QUOTE) {
        inString = false;
      }
    } else if (!isWhitespace(byte)) {
      out[outPos++] = byte;
      if (byte === QUOTE) inString = true;
    }
  }
  return outPos;
}

/**
 * Returns the validated JSON in `bytes[start, end)` without insignificant whitespace. Every
 * other byte (numbers, escapes, key order) is unchanged. The result shares memory with
 * `bytes` when there was nothing to remove.
 */
export function minifyJson(bytes: Uint8Array, start = 0, end = bytes.length): Buffer {
  const buffer = asBuffer(bytes);
  const out = Buffer.allocUnsafe(end - start);
  const length = minifyInto(buffer, start, end, out, 0);
  if (length === end - start) return buffer.subarray(start, end);
  return out.subarray(0, length);
}

/** Returns the minified bytes of one span of a scanned value. */
export function spanBytes(scanned: ScannedValue, span: JsonSpan): Buffer {
  if (span.compact) return scanned.bytes.subarray(span.start, span.end);
  return minifyJson(scanned.bytes, span.start, span.end);
}

/** Returns the minified bytes of a member's value. */
export function memberValueBytes(scanned: ScannedValue, member: JsonMember): Buffer {
  if (member.compact) return scanned.bytes.subarray(member.valueStart, member.end);
  return minifyJson(scanned.bytes, member.valueStart, member.end);
}

/**
 * Returns a minified object holding the members of `scanned` for which `keep` returns true,
 * in their original order. The result shares memory with the input when it is the whole
 * object unchanged.
 */
export function buildObject(scanned: ScannedValue, keep: (member: JsonMember) => boolean): Buffer {
  const members = scanned.members;
  const kept = members.filter(keep);
  if (scanned.compact && kept.length === members.length) {
    return scanned.bytes.subarray(scanned.start, scanned.end);
  }
  const out = Buffer.allocUnsafe(scanned.end - scanned.start);
  let pos = 0;
  out[pos++] = OPEN_BRACE;
  for (let i = 0; i < kept.length; i++) {
    const member = kept[i]!;
    if (i > 0) out[pos++] = COMMA;
    if (member.compact) {
      pos += scanned.bytes.copy(out, pos, member.start, member.end);
    } else {
      pos = minifyInto(scanned.bytes, member.start, member.end, out, pos);
    }
  }
  out[pos++] = CLOSE_BRACE;
  return out.subarray(0, pos);
}

/**
 * Returns `{<leading>,<members of body>,<trailing>}`. `body` must be a minified object;
 * `leading` and `trailing` are comma-separated JSON members (either may be empty). The body's
 * bytes are copied, never decoded.
 */
export function spliceObject(body: Uint8Array, leading: string, trailing: string): Buffer {
  const innerLength = body.length - 2;
  assert(
    innerLength >= 0 && body[0] === OPEN_BRACE && body[body.length - 1] === CLOSE_BRACE,
    'spliceObject needs a minified JSON object as its body',
  );
  const leadingLength = Buffer.byteLength(leading);
  const trailingLength = Buffer.byteLength(trailing);
  const needLeadingComma = leadingLength > 0 && (innerLength > 0 || trailingLength > 0);
  const needTrailingComma = trailingLength > 0 && innerLength > 0;
  const total =
    2 +
    leadingLength +
    innerLength +
    trailingLength +
    (needLeadingComma ? 1 : 0) +
    (needTrailingComma ? 1 : 0);

  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  out[pos++] = OPEN_BRACE;
  pos += out.write(leading, pos, 'utf8');
  if (needLeadingComma) out[pos++] = COMMA;
  out.set(body.subarray(1, body.length - 1), pos);
  pos += innerLength;
  if (needTrailingComma) out[pos++] = COMMA;
  pos += out.write(trailing, pos, 'utf8');
  out[pos++] = CLOSE_BRACE;
  return out;
}
