/**
 * A node's configuration: what `divan start` builds from its flags, a config file and the
 * environment, and what the node runs with. Parsing and validation live here so that the CLI,
 * tests and benchmarks build configurations the same way.
 */
import type { CorsSettings } from '../http/cors.js';
import type { DefaultSecurity } from '../security/access.js';

export interface Address {
  host: string;
  port: number;
}

export interface Member {
  name: string;
  peer: Address;
}

export interface AdminCredential {
  name: string;
  /** Either a clear password, hashed at start-up, or a stored `-pbkdf2-` hash. */
  password: string;
}

/** PEM contents of TLS files. */
export interface TlsFiles {
  key: Buffer;
  cert: Buffer;
  /** Certificates trusted to sign peers' certificates; absent means `cert` itself. */
  ca?: Buffer;
}

export interface NodeConfig {
  name: string;
  dataDir: string;
  http: Address;
  peer: Address;
  /**
   * The voters a new cluster starts with, this node included; empty for a node that joins a
   * running cluster (`join`).
   */
  members: Member[];
  /** URL of a node of a running cluster to join (its admin credentials come from `admins`). */
  join?: string;
  secret: Buffer;
  admins: AdminCredential[];
  /** Hard cap on retained log entries per database group. */
  logRetentionEntries: number;
  /** Hard cap on retained log bytes per database group. */
  logRetentionBytes: number;
  /** Database files kept open at once (least recently used are closed). */
  maxOpenDatabases: number;
  /** Length of one Raft tick. */
  tickMs: number;
  /** Maximum HTTP request body, which also bounds a peer frame. */
  maxRequestBytes: number;
  /** Maximum size of one document body. */
  maxDocumentBytes: number;
  /** How long a write waits for a leader before it fails with 503. */
  writeTimeoutMs: number;
  /** What a database whose `_security` names no members allows; `admin_only` when absent. */
  defaultSecurity?: DefaultSecurity;
  /**
   * Signs session cookies; the same on every node. Absent: derived from `secret`, which every
   * node of a cluster shares (src/security/cookie.ts `deriveCookieSecret`).
   */
  cookieSecret?: Buffer;
  /** How long a session cookie stays valid, in seconds; 600 when absent. */
  sessionTimeoutS?: number;
  /** CORS of the HTTP port; off unless it names an origin. */
  cors?: Partial<CorsSettings>;
  /** TLS of the HTTP port: PEM key and certificate chain. */
  httpTls?: TlsFiles;
  /** TLS of the peer port: PEM key, certificate chain and the CA that signed every node's. */
  peerTls?: TlsFiles;
  /** Maximum open waiting `_changes` feeds per user (per address when anonymous). */
  maxFeedsPerCaller?: number;
  /** Time a client has to send a whole request, in milliseconds; 0 for no limit. */
  requestTimeoutMs?: number;
  /**
   * Test-only: serve `GET`/`PUT /_node/_local/_faults` to change the file fault layers at run
   * time (fault runs use it to delay or stall fsync on one node).
   */
  faultControl?: boolean;
  /**
   * Test-only planted bug: followers acknowledge appends before they are durable. Fault runs
   * use it to prove they can detect lost acknowledged writes; never set it otherwise.
   */
  unsafeAckBeforeFsync?: boolean;
  /** Test-only: more bugs planted in every group's Raft core (see `PLANTED_BUGS`). */
  plantedBugs?: readonly string[];
}

export const defaultLimits = {
  logRetentionEntries: 10_000,
  logRetentionBytes: 64 * 1024 * 1024,
  maxOpenDatabases: 500,
  tickMs: 100,
  maxRequestBytes: 64 * 1024 * 1024,
  maxDocumentBytes: 8 * 1024 * 1024,
  writeTimeoutMs: 10_000,
} as const;

const NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;

/** Parses `HOST:PORT` (IPv6 hosts in brackets). */
export function parseAddress(text: string, what: string): Address {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(text.trim());
  if (match === null) {
    throw new ConfigError(`invalid ${what} address '${text}': expected HOST:PORT`);
  }
  const port = Number(match[2]);
  if (port < 1 || port > 65535) {
    throw new ConfigError(`invalid ${what} port ${port}: expected 1 to 65535`);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

/** Parses `n1@127.0.0.1:6984,n2@127.0.0.1:6985,...`. */
export function parseMembers(text: string): Member[] {
  const members = text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)
    .map((part) => {
      const at = part.indexOf('@');
      if (at <= 0) {
        throw new ConfigError(`invalid member '${part}': expected NAME@HOST:PORT`);
      }
      const name = validateNodeName(part.slice(0, at));
      return { name, peer: parseAddress(part.slice(at + 1), `member ${name}`) };
    });
  const names = new Set(members.map((member) => member.name));
  if (names.size !== members.length) {
    throw new ConfigError(`invalid members '${text}': a node name appears twice`);
  }
  return members;
}

/** Parses `NAME:PASSWORD`; the password may contain colons. */
export function parseAdmin(text: string): AdminCredential {
  const colon = text.indexOf(':');
  if (colon <= 0 || colon === text.length - 1) {
    throw new ConfigError('invalid admin: expected NAME:PASSWORD');
  }
  return { name: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** Parses an admin file: one `NAME:PASSWORD` (or `NAME:-pbkdf2-...`) per line, `#` comments. */
export function parseAdminFile(contents: string): AdminCredential[] {
  return contents
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'))
    .map(parseAdmin);
}

export function validateNodeName(name: string): string {
  if (!NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `invalid node name '${name}': use 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter`,
    );
  }
  return name;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
