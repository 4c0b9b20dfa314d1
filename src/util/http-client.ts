/**
 * The HTTP client a node uses for its rare requests to other nodes: joining a cluster, and
 * relaying a member's metrics or status. undici loads on the first request, not at start.
 * Loading it took about 130 ms of CPU when a node started, and a restarted node's groups wait
 * for that start.
 */
import type { Dispatcher } from 'undici';

type RequestFunction = typeof import('undici').request;

let loaded: Promise<RequestFunction> | null = null;

/** Sends a request with undici's `request`, loading undici on the first call. */
export async function httpRequest(
  url: string,
  options?: Parameters<RequestFunction>[1],
): Promise<Dispatcher.ResponseData<unknown>> {
  loaded ??= import('undici').then((undici) => undici.request);
  const request = await loaded;
  return request(url, options);
}
