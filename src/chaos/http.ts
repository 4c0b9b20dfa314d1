/**
 * HTTP requests to a node of a chaos run, as an outcome value rather than an exception: either
 * the node's response (any status) or a transport failure that says whether the request may
 * have reached the node. A refused connection never delivered the request; a timeout, a reset
 * or a connection closed mid-request may have, so its effect is unknown.
 *
 * Every request carries admin Basic auth and a deadline; nothing here retries.
 */
import { Agent, request } from 'undici';

export interface Credentials {
  readonly name: string;
  readonly password: string;
}

export type HttpOutcome =
  | {
      readonly kind: 'response';
      readonly status: number;
      readonly body: string;
      /** The parsed body, or undefined when it is not JSON. */
      readonly json: unknown;
    }
  | {
      readonly kind: 'failure';
      /** The error code (`ECONNREFUSED`, `UND_ERR_HEADERS_TIMEOUT`, ...) or error name. */
      readonly code: string;
      /** False only when the request certainly never reached the node. */
      readonly maybeDelivered: boolean;
    };

const NOT_DELIVERED_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED']);

export class NodeHttp {
  readonly #authorization: string;
  readonly #agent: Agent;

  constructor(credentials: Credentials) {
    const token = Buffer.from(`${credentials.name}:${credentials.password}`).toString('base64');
    this.#authorization = `Basic ${token}`;
    this.#agent = new Agent({ connections: null, pipelining: 1, keepAliveTimeout: 4_000 });
  }

  /** Sends one request to `http://127.0.0.1:{port}{path}` and waits at most `timeoutMs`. */
  async send(
    port: number,
    method: string,
    path: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<HttpOutcome> {
    const headers: Record<string, string> = { authorization: this.#authorization };
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    try {
      const response = await request(`http://127.0.0.1:${port}${path}`, {
        method: method as 'GET',
        headers,
        body: payload,
        dispatcher: this.#agent,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.body.text();
      return { kind: 'response', status: response.statusCode, body: text, json: parseJson(text) };
    } catch (error) {
      const code = errorCode(error);
      return { kind: 'failure', code, maybeDelivered: !NOT_DELIVERED_CODES.has(code) };
    }
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }
}

function parseJson(text: string): unknown {
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function errorCode(error: unknown): string {
  if (typeof error !== 'object' || error === null) return String(error);
  const withCode = error as { code?: unknown; name?: unknown; cause?: unknown };
  if (typeof withCode.code === 'string') return withCode.code;
  if (withCode.cause !== undefined && withCode.cause !== error) {
    const inner = errorCode(withCode.cause);
    if (inner !== 'Error') return inner;
  }
  return typeof withCode.name === 'string' ? withCode.name : 'Error';
}
