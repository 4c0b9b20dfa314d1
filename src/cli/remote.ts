/**
 * Commands that change a running cluster through any node's HTTP API: `divan join`,
 * `divan leave` and `divan transfer`. The URL carries the admin credentials, as in
 * `http://admin:PASSWORD@127.0.0.1:5984`.
 */
import { request } from 'undici';

interface Target {
  readonly base: URL;
  readonly headers: Record<string, string>;
}

export function targetOf(url: string): Target {
  const base = new URL(url);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (base.username !== '') {
    const credentials = `${decodeURIComponent(base.username)}:${decodeURIComponent(base.password)}`;
    headers.authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  }
  base.username = '';
  base.password = '';
  return { base, headers };
}

/** Sends one request and prints the reply; returns the exit code (0 on a 2xx status). */
async function send(
  url: string,
  method: 'PUT' | 'DELETE' | 'POST',
  path: string,
  body?: unknown,
): Promise<number> {
  const { base, headers } = targetOf(url);
  try {
    const response = await request(new URL(path, base), {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = (await response.body.text()).trim();
    const ok = response.statusCode >= 200 && response.statusCode < 300;
    (ok ? console.log : console.error)(`${response.statusCode} ${text}`);
    return ok ? 0 : 1;
  } catch (error) {
    console.error(`divan: ${method} ${path} failed: ${(error as Error).message}`);
    return 1;
  }
}

/** `divan join URL NAME --peer HOST:PORT [--http HOST:PORT]`: adds a member node. */
export function runJoin(
  url: string,
  name: string,
  options: { peer: string; http?: string },
): Promise<number> {
  return send(url, 'PUT', `/_node/_local/_nodes/${encodeURIComponent(name)}`, {
    peer: options.peer,
    ...(options.http === undefined ? {} : { http: options.http }),
  });
}

/** `divan leave URL NAME`: removes a member node from every group. */
export function runLeave(url: string, name: string): Promise<number> {
  return send(url, 'DELETE', `/_node/_local/_nodes/${encodeURIComponent(name)}`);
}

/** `divan transfer URL DB NODE`: moves the leadership of DB's group to NODE. */
export function runTransfer(url: string, db: string, node: string): Promise<number> {
  return send(url, 'POST', `/${encodeURIComponent(db)}/_raft/transfer`, { to: node });
}
