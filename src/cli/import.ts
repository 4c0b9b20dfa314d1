/**
 * `divan import FILE --db NAME --url URL`: loads documents from a JSON array or a
 * newline-delimited JSON file into a database through `_bulk_docs`, against any node.
 *
 * Documents are sent as the bytes the file contains (each one validated, never parsed into
 * JavaScript values), so numbers beyond 2^53 and key order survive. A progress bar on stderr
 * (cli-progress, only on a terminal) shows bytes read, documents written and documents per
 * second; the summary counts failures by kind (`conflict`, `invalid_json`, ...).
 *
 * Retries: a batch rejected with 503 `service_unavailable` (no leader accepted it, so nothing
 * was applied) is sent again after a pause. Any other failure is counted, never retried,
 * because a write whose outcome is unknown may have been applied. A batch rejected as too
 * large (413) is split in halves until each document goes alone.
 *
 * A JSON array is read into memory whole; use newline-delimited JSON for files larger than
 * the memory the process can spare.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { SingleBar } from 'cli-progress';
import { request } from 'undici';
import { scanJson, spanBytes } from '../document/json.js';
import { targetOf } from './remote.js';

export interface ImportOptions {
  readonly db: string;
  readonly url: string;
  /** Documents per `_bulk_docs` request. */
  readonly batchSize: number;
  /** `_bulk_docs` requests in flight at once. */
  readonly concurrency: number;
  /** Create the database when it does not exist. */
  readonly create: boolean;
}

/** Bytes of documents per request at most, well below the server's 64 MiB body limit. */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;
const UNAVAILABLE_RETRIES = 5;
const RETRY_PAUSE_MS = 1_000;
const MS_PER_SECOND = 1000;
/** Failed documents listed by id in the summary, at most. */
const EXAMPLES_SHOWN = 5;
const REQUEST_TIMEOUT_MS = 120_000;

/** One document read from the file, or why a line or element could not be used. */
type Parsed =
  | { readonly kind: 'document'; readonly bytes: Buffer; readonly offset: number }
  | {
      readonly kind: 'error';
      readonly error: string;
      readonly where: string;
      readonly offset: number;
    };

interface Failure {
  readonly id: string;
  readonly error: string;
  readonly reason: string;
}

/** Counts of one import, shown in the summary. */
export interface ImportSummary {
  read: number;
  written: number;
  failed: number;
  /** Failures by CouchDB error or input problem. */
  readonly byKind: Map<string, number>;
  readonly examples: Failure[];
}

export async function runImport(file: string, options: ImportOptions): Promise<number> {
  const { base, headers } = targetOf(options.url);
  const started = performance.now();
  try {
    const size = (await stat(file)).size;
    if (options.create) await createDatabase(base, headers, options.db);
    const progress = new SingleBar({
      format: 'import {bar} {percentage}% | {docs} docs | {rate} docs/s | {failed} failed',
      stream: process.stderr,
      hideCursor: true,
    });
    progress.start(size, 0, { docs: 0, rate: 0, failed: 0 });
    const summary = await importDocuments(file, options, base, headers, (offset, counts) => {
      const seconds = (performance.now() - started) / MS_PER_SECOND;
      progress.update(offset, {
        docs: counts.written,
        rate: Math.round(counts.written / Math.max(seconds, 1 / MS_PER_SECOND)),
        failed: counts.failed,
      });
    });
    progress.update(size);
    progress.stop();
    printSummary(summary, (performance.now() - started) / MS_PER_SECOND, options.db);
    return summary.failed === 0 ? 0 : 1;
  } catch (error) {
    console.error(`divan import: ${(error as Error).message}`);
    return 1;
  }
}

async function createDatabase(
  base: URL,
  headers: Record<string, string>,
  db: string,
): Promise<void> {
  const response = await request(new URL(`/${encodeURIComponent(db)}`, base), {
    method: 'PUT',
    headers,
  });
  const body = await response.body.text();
  if (response.statusCode !== 201 && response.statusCode !== 412) {
    throw new Error(`creating ${db} returned ${response.statusCode}: ${body.trim()}`);
  }
}

/** Reads the file, sends every document, and returns the counts. */
export async function importDocuments(
  file: string,
  options: ImportOptions,
  base: URL,
  headers: Record<string, string>,
  onProgress: (offset: number, summary: ImportSummary) => void = () => {},
): Promise<ImportSummary> {
  const summary: ImportSummary = {
    read: 0,
    written: 0,
    failed: 0,
    byKind: new Map(),
    examples: [],
  };
  const sender = new BatchSender(options, base, headers, summary);
  let batch: Buffer[] = [];
  let batchBytes = 0;
  let offset = 0;
  for await (const parsed of readDocuments(file)) {
    offset = parsed.offset;
    if (parsed.kind === 'error') {
      record(summary, { id: parsed.where, error: parsed.error, reason: parsed.error });
      continue;
    }
    summary.read++;
    batch.push(parsed.bytes);
    batchBytes += parsed.bytes.length;
    if (batch.length >= options.batchSize || batchBytes >= MAX_BATCH_BYTES) {
      await sender.send(batch);
      onProgress(offset, summary);
      batch = [];
      batchBytes = 0;
    }
  }
  if (batch.length > 0) await sender.send(batch);
  await sender.drain();
  onProgress(offset, summary);
  return summary;
}

/** Reads a JSON array when the first non-blank byte is `[`, else one document per line. */
async function* readDocuments(file: string): AsyncGenerator<Parsed> {
  if ((await firstByte(file)) === ARRAY_START) {
    yield* arrayDocuments(await readFile(file));
    return;
  }
  yield* lineDocuments(file);
}

/** Returns the file's first byte that is not JSON whitespace, or null when there is none. */
async function firstByte(file: string): Promise<number | null> {
  for await (const chunk of createReadStream(file)) {
    const found = (chunk as Buffer).find((byte) => !isJsonWhitespace(byte));
    if (found !== undefined) return found;
  }
  return null;
}

const ARRAY_START = 0x5b;
const OBJECT_START = 0x7b;

function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function* arrayDocuments(bytes: Buffer): Generator<Parsed> {
  let scanned: ReturnType<typeof scanJson>;
  try {
    scanned = scanJson(bytes);
  } catch {
    yield { kind: 'error', error: 'invalid_json', where: 'the array', offset: bytes.length };
    return;
  }
  for (const [index, element] of scanned.elements.entries()) {
    const document = spanBytes(scanned, element);
    if (document[0] !== OBJECT_START) {
      yield {
        kind: 'error',
        error: 'not_an_object',
        where: `element ${index}`,
        offset: element.end,
      };
      continue;
    }
    yield { kind: 'document', bytes: document, offset: element.end };
  }
}

async function* lineDocuments(file: string): AsyncGenerator<Parsed> {
  const stream = createReadStream(file);
  const lines = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let number = 0;
  let offset = 0;
  for await (const line of lines) {
    number++;
    offset += Buffer.byteLength(line) + 1;
    if (line.trim() === '') continue;
    const bytes = Buffer.from(line, 'utf8');
    let kind: string;
    try {
      kind = scanJson(bytes).kind;
    } catch {
      yield { kind: 'error', error: 'invalid_json', where: `line ${number}`, offset };
      continue;
    }
    if (kind !== 'object') {
      yield { kind: 'error', error: 'not_an_object', where: `line ${number}`, offset };
      continue;
    }
    yield { kind: 'document', bytes, offset };
  }
}

/** Sends batches with at most `concurrency` requests in flight. */
class BatchSender {
  readonly #inFlight = new Set<Promise<void>>();

  constructor(
    readonly options: ImportOptions,
    readonly base: URL,
    readonly headers: Record<string, string>,
    readonly summary: ImportSummary,
  ) {}

  async send(batch: Buffer[]): Promise<void> {
    while (this.#inFlight.size >= this.options.concurrency) await Promise.race(this.#inFlight);
    const sending = this.#sendBatch(batch).finally(() => this.#inFlight.delete(sending));
    this.#inFlight.add(sending);
  }

  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
  }

  async #sendBatch(batch: Buffer[]): Promise<void> {
    const path = `/${encodeURIComponent(this.options.db)}/_bulk_docs`;
    const body = Buffer.concat([
      Buffer.from('{"docs":['),
      ...batch.flatMap((document, index) => (index === 0 ? [document] : [COMMA, document])),
      Buffer.from(']}'),
    ]);
    for (let attempt = 0; ; attempt++) {
      let status: number;
      let text: string;
      try {
        const response = await request(new URL(path, this.base), {
          method: 'POST',
          headers: this.headers,
          body,
          headersTimeout: REQUEST_TIMEOUT_MS,
          bodyTimeout: REQUEST_TIMEOUT_MS,
        });
        status = response.statusCode;
        text = await response.body.text();
      } catch (error) {
        this.#failAll(batch, 'request_failed', (error as Error).message);
        return;
      }
      if (status === 201 || status === 202) {
        this.#recordResults(batch, text);
        return;
      }
      const reply = parseError(text);
      if (status === 413 && batch.length > 1) {
        const half = Math.ceil(batch.length / 2);
        await this.#sendBatch(batch.slice(0, half));
        await this.#sendBatch(batch.slice(half));
        return;
      }
      if (
        status === 503 &&
        reply.error === 'service_unavailable' &&
        attempt < UNAVAILABLE_RETRIES
      ) {
        await new Promise((resolve) => setTimeout(resolve, RETRY_PAUSE_MS));
        continue;
      }
      this.#failAll(batch, reply.error ?? `http_${status}`, reply.reason ?? text.trim());
      return;
    }
  }

  #recordResults(batch: Buffer[], text: string): void {
    const results = JSON.parse(text) as {
      id?: string;
      ok?: boolean;
      error?: string;
      reason?: string;
    }[];
    if (!Array.isArray(results) || results.length !== batch.length) {
      this.#failAll(batch, 'bad_reply', `_bulk_docs returned ${text.slice(0, 200)}`);
      return;
    }
    for (const result of results) {
      if (result.error === undefined) {
        this.summary.written++;
        continue;
      }
      record(this.summary, {
        id: result.id ?? '(no id)',
        error: result.error,
        reason: result.reason ?? '',
      });
    }
  }

  #failAll(batch: Buffer[], error: string, reason: string): void {
    for (const document of batch) record(this.summary, { id: documentId(document), error, reason });
  }
}

const COMMA = Buffer.from(',');

function parseError(text: string): { error?: string; reason?: string } {
  try {
    const parsed = JSON.parse(text) as { error?: unknown; reason?: unknown };
    return {
      ...(typeof parsed.error === 'string' ? { error: parsed.error } : {}),
      ...(typeof parsed.reason === 'string' ? { reason: parsed.reason } : {}),
    };
  } catch {
    return {};
  }
}

/** Returns the `_id` of a document for the summary, or `(no id)`. */
function documentId(document: Buffer): string {
  try {
    const id = (JSON.parse(document.toString('utf8')) as { _id?: unknown })._id;
    return typeof id === 'string' ? id : '(no id)';
  } catch {
    return '(no id)';
  }
}

function record(summary: ImportSummary, failure: Failure): void {
  summary.failed++;
  summary.byKind.set(failure.error, (summary.byKind.get(failure.error) ?? 0) + 1);
  if (summary.examples.length < EXAMPLES_SHOWN) summary.examples.push(failure);
}

function printSummary(summary: ImportSummary, seconds: number, db: string): void {
  const rate = Math.round(summary.written / Math.max(seconds, 1 / MS_PER_SECOND));
  console.log(
    `imported ${summary.written} of ${summary.read + countInputErrors(summary)} documents into ${db} in ${seconds.toFixed(1)} s (${rate} docs/s)`,
  );
  if (summary.failed === 0) return;
  const kinds = [...summary.byKind]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');
  console.log(`${summary.failed} failed: ${kinds}`);
  for (const example of summary.examples) {
    console.log(
      `  ${example.id}: ${example.error}${example.reason === example.error ? '' : ` (${example.reason})`}`,
    );
  }
}

function countInputErrors(summary: ImportSummary): number {
  return (summary.byKind.get('invalid_json') ?? 0) + (summary.byKind.get('not_an_object') ?? 0);
}
