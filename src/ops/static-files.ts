/**
 * `serveStatic`: sends one file of a static folder (the status page, Fauxton) over fastify,
 * as CouchDB serves `/_utils/`. It serves GET and HEAD only and confines paths to the folder
 * (no `..`, no symbolic link out of it, no hidden files). Each file gets a MIME type by its
 * extension and the caller's cache and content-security headers.
 *
 * Files are read whole into memory per request; the largest Fauxton file is under 2 MB.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import { extname, join, sep } from 'node:path';
import type { FastifyReply } from 'fastify';

const MIME_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'application/javascript',
  '.mjs': 'application/javascript',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.eot': 'application/vnd.ms-fontobject',
  '.txt': 'text/plain; charset=utf-8',
};
const DEFAULT_MIME_TYPE = 'application/octet-stream';

export interface StaticOptions {
  /** The folder files are served from. */
  readonly root: string;
  readonly headers: Readonly<Record<string, string>>;
}

export type StaticOutcome = 'sent' | 'not_found';

/** Returns the MIME type the file name's extension maps to. */
export function mimeType(name: string): string {
  return MIME_TYPES[extname(name).toLowerCase()] ?? DEFAULT_MIME_TYPE;
}

/**
 * Sends `segments` (decoded path segments below the root) from the folder, or returns
 * `not_found` without sending when the path is outside it, hidden or not a regular file.
 */
export async function serveStatic(
  reply: FastifyReply,
  method: string,
  segments: readonly string[],
  options: StaticOptions,
): Promise<StaticOutcome> {
  if (!segments.every(isPlainSegment)) return 'not_found';
  const path = await confinedPath(options.root, join(options.root, ...segments));
  if (path === null) return 'not_found';
  const body = method === 'HEAD' ? null : await readFile(path);
  const size = body?.length ?? (await stat(path)).size;
  reply
    .code(200)
    .headers(options.headers)
    .header('content-type', mimeType(path))
    .header('content-length', String(size));
  reply.send(body ?? '');
  return 'sent';
}

/** Sends a 301 to `location`, as CouchDB redirects `/_utils` to `/_utils/`. */
export function sendRedirect(reply: FastifyReply, location: string): void {
  reply.code(301).header('location', location).header('content-length', '0').send();
}

function isPlainSegment(segment: string): boolean {
  return (
    segment.length > 0 &&
    !segment.startsWith('.') &&
    !segment.includes('/') &&
    !segment.includes('\\') &&
    !segment.includes('\0')
  );
}

/** Resolves `candidate` to its real path when it is a regular file inside `root`, else null. */
async function confinedPath(root: string, candidate: string): Promise<string | null> {
  try {
    const [realRoot, realCandidate] = await Promise.all([realpath(root), realpath(candidate)]);
    if (!realCandidate.startsWith(realRoot + sep)) return null;
    const info = await stat(realCandidate);
    return info.isFile() ? realCandidate : null;
  } catch {
    return null;
  }
}
