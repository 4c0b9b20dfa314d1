/**
 * `divan start`: builds a node configuration from flags, an optional JSON config file and
 * `DIVAN_*` environment variables (flags win over the environment, which wins over the file),
 * then runs the node until SIGTERM or SIGINT.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  type AdminCredential,
  ConfigError,
  defaultLimits,
  type NodeConfig,
  parseAddress,
  parseAdmin,
  parseAdminFile,
  parseMembers,
  type TlsFiles,
  validateNodeName,
} from '../cluster/config.js';
import { startNode } from '../cluster/start.js';
import { parseDefaultSecurity } from '../security/access.js';
import { createLogger } from '../util/log.js';
import { missingRuntimeFlags } from './runtime-flags.js';

export interface StartFlags {
  config?: string;
  name?: string;
  data?: string;
  http?: string;
  peer?: string;
  members?: string;
  join?: string;
  secretFile?: string;
  admin?: string;
  adminFile?: string;
  logRetentionEntries?: number;
  logRetentionBytes?: number;
  maxOpenDatabases?: number;
  faultControl?: boolean;
  unsafeAckBeforeFsync?: boolean;
  plantedBug?: string[];
  cookieSecretFile?: string;
  sessionTimeout?: number;
  defaultSecurity?: string;
  corsOrigins?: string;
  corsCredentials?: boolean;
  corsMethods?: string;
  corsHeaders?: string;
  corsMaxAge?: number;
  tlsKey?: string;
  tlsCert?: string;
  peerTlsKey?: string;
  peerTlsCert?: string;
  peerTlsCa?: string;
  maxFeedsPerUser?: number;
  requestTimeoutMs?: number;
}

const ENVIRONMENT: Record<string, keyof StartFlags> = {
  DIVAN_NAME: 'name',
  DIVAN_DATA: 'data',
  DIVAN_HTTP: 'http',
  DIVAN_PEER: 'peer',
  DIVAN_MEMBERS: 'members',
  DIVAN_JOIN: 'join',
  DIVAN_SECRET_FILE: 'secretFile',
  DIVAN_ADMIN: 'admin',
  DIVAN_ADMIN_FILE: 'adminFile',
  DIVAN_COOKIE_SECRET_FILE: 'cookieSecretFile',
  DIVAN_DEFAULT_SECURITY: 'defaultSecurity',
  DIVAN_CORS_ORIGINS: 'corsOrigins',
  DIVAN_TLS_KEY: 'tlsKey',
  DIVAN_TLS_CERT: 'tlsCert',
  DIVAN_PEER_TLS_KEY: 'peerTlsKey',
  DIVAN_PEER_TLS_CERT: 'peerTlsCert',
  DIVAN_PEER_TLS_CA: 'peerTlsCa',
};

const MIN_SECRET_CHARACTERS = 32;

/** Merges the config file, the environment and the flags into one set of settings. */
export function mergeSettings(flags: StartFlags, env: NodeJS.ProcessEnv): StartFlags {
  const fromFile: StartFlags =
    flags.config === undefined
      ? {}
      : (JSON.parse(readFileSync(flags.config, 'utf8')) as StartFlags);
  const fromEnv: StartFlags = {};
  for (const [variable, key] of Object.entries(ENVIRONMENT)) {
    const value = env[variable];
    if (value !== undefined && value !== '') (fromEnv as Record<string, unknown>)[key] = value;
  }
  const defined = Object.fromEntries(
    Object.entries(flags).filter(([, value]) => value !== undefined),
  );
  return { ...fromFile, ...fromEnv, ...defined };
}

/** Builds and validates a node configuration; throws ConfigError naming what is wrong. */
export function buildConfig(settings: StartFlags): NodeConfig {
  const required = (value: string | undefined, flag: string): string => {
    if (value === undefined || value === '') throw new ConfigError(`missing ${flag}`);
    return value;
  };
  const name = validateNodeName(required(settings.name, '--name'));
  if (settings.join !== undefined && settings.members !== undefined) {
    throw new ConfigError(
      'pass either --members (a new cluster) or --join (a running one), not both',
    );
  }
  const members =
    settings.join !== undefined
      ? []
      : parseMembers(required(settings.members, '--members or --join'));
  if (settings.join === undefined && !members.some((member) => member.name === name)) {
    throw new ConfigError(`--members does not name this node (${name})`);
  }
  const secret = readSecret(required(settings.secretFile, '--secret-file'));
  const admins: AdminCredential[] = [];
  if (settings.admin !== undefined) admins.push(parseAdmin(settings.admin));
  if (settings.adminFile !== undefined) {
    admins.push(...parseAdminFile(readFileSync(settings.adminFile, 'utf8')));
  }
  if (admins.length === 0) {
    throw new ConfigError('no server admin: pass --admin NAME:PASSWORD or --admin-file FILE');
  }
  return {
    name,
    dataDir: resolve(required(settings.data, '--data')),
    http: parseAddress(required(settings.http, '--http'), 'HTTP'),
    peer: parseAddress(required(settings.peer, '--peer'), 'peer'),
    members,
    ...(settings.join === undefined ? {} : { join: settings.join }),
    secret: Buffer.from(secret, 'utf8'),
    admins,
    ...defaultLimits,
    ...(settings.logRetentionEntries === undefined
      ? {}
      : { logRetentionEntries: Number(settings.logRetentionEntries) }),
    ...(settings.logRetentionBytes === undefined
      ? {}
      : { logRetentionBytes: Number(settings.logRetentionBytes) }),
    ...(settings.maxOpenDatabases === undefined
      ? {}
      : { maxOpenDatabases: Number(settings.maxOpenDatabases) }),
    ...(settings.faultControl === true ? { faultControl: true } : {}),
    ...(settings.unsafeAckBeforeFsync === true ? { unsafeAckBeforeFsync: true } : {}),
    ...(settings.plantedBug === undefined ? {} : { plantedBugs: settings.plantedBug }),
    ...securityConfig(settings),
  };
}

function readSecret(file: string): string {
  const secret = readFileSync(file, 'utf8').trim();
  if (secret.length < MIN_SECRET_CHARACTERS) {
    throw new ConfigError(
      `the secret in ${file} is too short: use at least ${MIN_SECRET_CHARACTERS} characters`,
    );
  }
  return secret;
}

function list(text: string): string[] {
  return text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** Reads a TLS key and certificate pair; both or neither must be given. */
function tlsFiles(
  key: string | undefined,
  cert: string | undefined,
  ca: string | undefined,
  flag: string,
): TlsFiles | undefined {
  if (key === undefined && cert === undefined) {
    if (ca !== undefined) throw new ConfigError(`${flag}-ca needs ${flag}-key and ${flag}-cert`);
    return undefined;
  }
  if (key === undefined || cert === undefined) {
    throw new ConfigError(`pass both ${flag}-key and ${flag}-cert, or neither`);
  }
  return {
    key: readFileSync(key),
    cert: readFileSync(cert),
    ...(ca === undefined ? {} : { ca: readFileSync(ca) }),
  };
}

/** Builds the security part of a node configuration: sessions, access, CORS, TLS, limits. */
function securityConfig(settings: StartFlags): Partial<NodeConfig> {
  const config: Partial<NodeConfig> = {};
  if (settings.cookieSecretFile !== undefined) {
    config.cookieSecret = Buffer.from(readSecret(settings.cookieSecretFile), 'utf8');
  }
  if (settings.sessionTimeout !== undefined) {
    config.sessionTimeoutS = Number(settings.sessionTimeout);
  }
  if (settings.defaultSecurity !== undefined) {
    const parsed = parseDefaultSecurity(settings.defaultSecurity);
    if (parsed === null) {
      throw new ConfigError(
        `invalid --default-security '${settings.defaultSecurity}': expected admin_only or everyone`,
      );
    }
    config.defaultSecurity = parsed;
  }
  if (settings.corsOrigins !== undefined) {
    config.cors = {
      origins: list(settings.corsOrigins),
      credentials: settings.corsCredentials === true,
      ...(settings.corsMethods === undefined ? {} : { methods: list(settings.corsMethods) }),
      ...(settings.corsHeaders === undefined ? {} : { headers: list(settings.corsHeaders) }),
      ...(settings.corsMaxAge === undefined ? {} : { maxAgeS: Number(settings.corsMaxAge) }),
    };
  }
  const httpTls = tlsFiles(settings.tlsKey, settings.tlsCert, undefined, '--tls');
  if (httpTls !== undefined) config.httpTls = httpTls;
  const peerTls = tlsFiles(
    settings.peerTlsKey,
    settings.peerTlsCert,
    settings.peerTlsCa,
    '--peer-tls',
  );
  if (peerTls !== undefined) config.peerTls = peerTls;
  if (settings.maxFeedsPerUser !== undefined) {
    config.maxFeedsPerCaller = Number(settings.maxFeedsPerUser);
  }
  if (settings.requestTimeoutMs !== undefined) {
    config.requestTimeoutMs = Number(settings.requestTimeoutMs);
  }
  return config;
}

/** Runs one node in the foreground until SIGTERM or SIGINT. */
export async function runStart(flags: StartFlags): Promise<void> {
  const config = buildConfig(mergeSettings(flags, process.env));
  const logger = createLogger({ node: config.name });
  const missing = missingRuntimeFlags();
  if (missing.length > 0) {
    logger.warn(
      { missing },
      'node started without the Node.js flags of bin/divan.js; resident memory runs higher. ' +
        'Run bin/divan.js directly, or pass the missing flags to node or in NODE_OPTIONS',
    );
  }
  const node = await startNode(config, logger);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping node');
    await node.stop();
    logger.info('node stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
