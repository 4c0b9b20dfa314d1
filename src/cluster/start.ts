/**
 * Starts a node and its HTTP API: the entry point `divan start`, tests and benchmarks use.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { type AdminCredential, hashPassword, parsePasswordHash } from '../http/auth.js';
import { deriveCookieSecret } from '../security/cookie.js';
import type { FaultStack } from '../storage/io.js';
import { probeListen } from '../util/listen-probe.js';
import type { Logger } from '../util/log.js';
import { ConfigError, type NodeConfig } from './config.js';
import { DivanNode } from './node.js';

/** The package's version, for `GET /`; this module runs from dist/src/cluster/. */
const DIVAN_VERSION = (
  JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

export interface RunningNode {
  readonly node: DivanNode;
  readonly http: FastifyInstance;
  stop(): Promise<void>;
}

/** Starts the node, then loads the HTTP layer and listens; `stop` closes both, HTTP first. */
export async function startNode(
  config: NodeConfig,
  logger: Logger,
  faults?: FaultStack,
): Promise<RunningNode> {
  const admins = await adminCredentials(config);
  // A taken HTTP port is found before the node opens its files and joins elections. The real
  // listen below still reports the port if it was taken in between.
  await checkCanListen('HTTP', config.http);
  const node = new DivanNode(config, logger, faults);
  try {
    await node.start();
  } catch (error) {
    throw listenError(error, 'peer', config.peer) ?? error;
  }
  // The HTTP layer (fastify and the routes) loads once the node runs, so a restarted node
  // takes part in its groups' elections and replication sooner. Its listener comes up a little
  // later, since the node's catch-up work runs while the layer loads.
  const [{ createHttpServer }, { installRequestMetrics }, { NodeBackend }] = await Promise.all([
    import('../http/index.js'),
    import('../ops/http-metrics.js'),
    import('./backend.js'),
  ]);
  const http = createHttpServer({
    backend: new NodeBackend(node),
    admins,
    limits: {
      maxRequestBodyBytes: config.maxRequestBytes,
      maxDocumentBytes: config.maxDocumentBytes,
      ...(config.maxFeedsPerCaller === undefined
        ? {}
        : { maxFeedsPerCaller: config.maxFeedsPerCaller }),
      ...(config.requestTimeoutMs === undefined
        ? {}
        : { requestTimeoutMs: config.requestTimeoutMs }),
    },
    logger: logger.child({ component: 'http' }),
    version: DIVAN_VERSION,
    security: {
      cookieSecret: config.cookieSecret ?? deriveCookieSecret(config.secret),
      defaultSecurity: config.defaultSecurity ?? 'admin_only',
      ...(config.sessionTimeoutS === undefined ? {} : { sessionTimeoutS: config.sessionTimeoutS }),
    },
    ...(config.cors === undefined ? {} : { cors: config.cors }),
    ...(config.httpTls === undefined
      ? {}
      : { tls: { key: config.httpTls.key, cert: config.httpTls.cert } }),
  });
  installRequestMetrics(http, node.metrics);
  try {
    await http.listen({ host: config.http.host, port: config.http.port });
  } catch (error) {
    await http.close();
    await node.stop();
    throw listenError(error, 'HTTP', config.http) ?? error;
  }
  const scheme = config.httpTls === undefined ? 'http' : 'https';
  logger.info({ http: `${scheme}://${config.http.host}:${config.http.port}` }, 'http listening');
  node.startJoining();
  return {
    node,
    http,
    stop: async () => {
      await http.close();
      await node.stop();
    },
  };
}

/** Reasons a listener cannot bind that the user fixes by choosing another address. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  EACCES: 'permission denied',
};

/** Turns a failed bind into a ConfigError naming the listener and its address. */
function listenError(
  error: unknown,
  listener: string,
  address: { host: string; port: number },
): ConfigError | null {
  const code = (error as { code?: unknown } | null)?.code;
  const reason = typeof code === 'string' ? LISTEN_FAILURES[code] : undefined;
  if (reason === undefined) return null;
  return new ConfigError(
    `cannot listen for ${listener} on ${address.host}:${address.port}: ${reason}`,
  );
}

/** Binds `address` for a moment and raises the ConfigError of `listenError` when it cannot. */
async function checkCanListen(
  listener: string,
  address: { host: string; port: number },
): Promise<void> {
  const error = await probeListen(address.host, address.port);
  if (error !== null) throw listenError(error, listener, address) ?? error;
}

/** Hashes clear passwords once at start-up; stored `-pbkdf2-` hashes are used as they are. */
async function adminCredentials(config: NodeConfig): Promise<AdminCredential[]> {
  return Promise.all(
    config.admins.map(async (admin) => ({
      name: admin.name,
      passwordHash:
        parsePasswordHash(admin.password) === null
          ? await hashPassword(admin.password)
          : admin.password,
    })),
  );
}
