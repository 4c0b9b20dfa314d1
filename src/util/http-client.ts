/**
 * The HTTP client a node uses for its rare requests to other nodes: joining a cluster, and
 * relaying a member's metrics or status. undici loads on the first request, because loading
 * it at start cost about 130 ms of CPU and delayed a restarted node's groups.
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
