/**
 * The `divan` command line: `start` runs one node, `cluster` a local cluster of node processes,
 * `status` prints the Raft state of a cluster's groups, `import` loads documents from a file
 * and `compact` compacts a database.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError } from '../cluster/config.js';
import type { StartFlags } from './start.js';

function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).syscall === 'string';
}

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) {
    throw new InvalidArgumentError(`'${value}' is not a non-negative integer`);
  }
  return parsed;
}

function positive(value: string): number {
  const parsed = integer(value);
  if (parsed === 0) throw new InvalidArgumentError(`'${value}' is not a positive integer`);
  return parsed;
}

const DEFAULT_WATCH_SECONDS = 2;
const MS_PER_SECOND = 1000;
/** Documents per `_bulk_docs` request of `divan import`. */
const DEFAULT_BATCH_SIZE = 500;
/** Requests `divan import` keeps in flight. */
const DEFAULT_CONCURRENCY = 2;

// Each action imports its command's module, so `divan start` does not load the HTTP client
// and progress bars of the other commands.
const program = new Command()
  .name('divan')
  .description('A CouchDB-compatible document database replicated with Raft')
  .showHelpAfterError()
  .enablePositionalOptions();

program
  .command('start')
  .description('run one node of a cluster')
  .option('--config <file>', 'JSON file with any of the options below (flags win)')
  .option('--name <name>', 'node name, unique in the cluster (env DIVAN_NAME)')
  .option('--data <dir>', 'data directory of this node (env DIVAN_DATA)')
  .option('--http <host:port>', 'HTTP API address (env DIVAN_HTTP)')
  .option('--peer <host:port>', 'peer address other nodes connect to (env DIVAN_PEER)')
  .option('--members <list>', 'voters of a new cluster: name@host:port,... (env DIVAN_MEMBERS)')
  .option('--join <url>', 'join the running cluster of the node at URL (env DIVAN_JOIN)')
  .option('--secret-file <file>', 'file holding the cluster secret (env DIVAN_SECRET_FILE)')
  .option('--admin <name:password>', 'server admin (env DIVAN_ADMIN)')
  .option('--admin-file <file>', 'file of server admins, one name:password per line')
  .option('--log-retention-entries <n>', 'hard cap on retained log entries per database', integer)
  .option('--log-retention-bytes <n>', 'hard cap on retained log bytes per database', integer)
  .option('--max-open-databases <n>', 'database files kept open at once', integer)
  .option(
    '--cookie-secret-file <file>',
    'file holding the session cookie secret, the same on every node (default: derived from the cluster secret; env DIVAN_COOKIE_SECRET_FILE)',
  )
  .option('--session-timeout <seconds>', 'lifetime of a session cookie (default 600)', integer)
  .option(
    '--default-security <mode>',
    'access to databases whose _security names no members: admin_only (default) or everyone (env DIVAN_DEFAULT_SECURITY)',
  )
  .option(
    '--cors-origins <list>',
    'enable CORS for these origins, comma-separated, or * (env DIVAN_CORS_ORIGINS)',
  )
  .option('--cors-credentials', 'let browsers send credentials on CORS requests')
  .option(
    '--cors-methods <list>',
    'methods allowed on CORS requests (default GET,PUT,POST,HEAD,DELETE)',
  )
  .option('--cors-headers <list>', 'request headers allowed on CORS requests')
  .option(
    '--cors-max-age <seconds>',
    'how long browsers may cache a CORS preflight (default 600)',
    integer,
  )
  .option('--tls-key <file>', 'serve HTTPS with this PEM private key (env DIVAN_TLS_KEY)')
  .option('--tls-cert <file>', 'and this PEM certificate chain (env DIVAN_TLS_CERT)')
  .option('--peer-tls-key <file>', 'encrypt the peer port with TLS: PEM private key')
  .option('--peer-tls-cert <file>', 'PEM certificate chain of this node on the peer port')
  .option(
    '--peer-tls-ca <file>',
    'PEM CA certificates that signed the peers (default: --peer-tls-cert)',
  )
  .option(
    '--max-feeds-per-user <n>',
    'open _changes feeds per user or anonymous address (default 100)',
    integer,
  )
  .option(
    '--request-timeout-ms <ms>',
    'time a client has to send a whole request (default 300000; 0: none)',
    integer,
  )
  .option('--fault-control', 'test-only: serve /_node/_local/_faults to change file faults')
  .option(
    '--unsafe-ack-before-fsync',
    'test-only planted bug: acknowledge appends before fsync; never use it for data you keep',
  )
  .option(
    '--planted-bug <name>',
    'test-only: plant a Raft core bug (repeatable), e.g. read_without_read_index',
    (value: string, previous: string[] = []) => [...previous, value],
  )
  .action(async (flags: StartFlags) => {
    const { runStart } = await import('./start.js');
    await runStart(flags);
  });

const cluster = program
  .command('cluster')
  .description('run a local cluster of node processes in the foreground')
  .enablePositionalOptions()
  .option('--nodes <n>', 'number of nodes', integer, 3)
  .option('--data <dir>', 'data directory of the cluster', '.divan/cluster')
  .option('--host <host>', 'address every node listens on', '127.0.0.1')
  .option(
    '--port <port>',
    'HTTP port of the first node; the others take the next ports',
    integer,
    5984,
  )
  .option('--peer-port <port>', 'peer port of the first node (default: --port + 1000)', integer)
  .option('--admin <name:password>', 'server admin (default: generated, saved in DATA/admin.txt)')
  .option('--log-retention-entries <n>', 'hard cap on retained log entries per database', integer)
  .option('--log-retention-bytes <n>', 'hard cap on retained log bytes per database', integer)
  .action(async (options) => {
    const { runCluster } = await import('./cluster.js');
    process.exitCode = await runCluster(options);
  });

cluster
  .command('add')
  .description('add a node to the local cluster running on DIR (it joins every database)')
  .option('--data <dir>', 'data directory of the running cluster', '.divan/cluster')
  .action(async (options: { data: string }) => {
    const { addClusterNode } = await import('./cluster.js');
    process.exitCode = await addClusterNode(options.data);
  });

program
  .command('join')
  .description('add a member node to a running cluster (the node then joins every group)')
  .argument('<url>', 'URL of any node, with credentials: http://admin:password@127.0.0.1:5984')
  .argument('<name>', 'name of the node to add')
  .requiredOption('--peer <host:port>', 'peer address of the node to add')
  .option('--http <host:port>', 'HTTP address of the node to add')
  .action(async (url: string, name: string, options: { peer: string; http?: string }) => {
    const { runJoin } = await import('./remote.js');
    process.exitCode = await runJoin(url, name, options);
  });

program
  .command('leave')
  .description('remove a member node from a running cluster')
  .argument('<url>', 'URL of any node, with credentials')
  .argument('<name>', 'name of the node to remove')
  .action(async (url: string, name: string) => {
    const { runLeave } = await import('./remote.js');
    process.exitCode = await runLeave(url, name);
  });

program
  .command('transfer')
  .description("move the leadership of a database's group to another node")
  .argument('<url>', 'URL of any node, with credentials')
  .argument('<db>', 'database name')
  .argument('<node>', 'name of the node that should lead')
  .action(async (url: string, db: string, node: string) => {
    const { runTransfer } = await import('./remote.js');
    process.exitCode = await runTransfer(url, db, node);
  });

program
  .command('status')
  .description("print the Raft state of a cluster's groups")
  .argument('<url>', 'URL of any node, with credentials: http://admin:password@127.0.0.1:5984')
  .option('--watch [seconds]', 'redraw the whole cluster every SECONDS (2) until Ctrl-C', positive)
  .option('--times <n>', 'with --watch: stop after N redraws', integer)
  .action(async (url: string, options: { watch?: number | true; times?: number }) => {
    const { runStatus, watchStatus } = await import('./status.js');
    if (options.watch === undefined) {
      process.exitCode = await runStatus(url);
      return;
    }
    process.exitCode = await watchStatus(url, {
      intervalSeconds: options.watch === true ? DEFAULT_WATCH_SECONDS : options.watch,
      ...(options.times === undefined ? {} : { times: options.times }),
    });
  });

program
  .command('import')
  .description('load a JSON array or newline-delimited JSON file into a database')
  .argument('<file>', 'JSON array of documents, or one JSON document per line')
  .requiredOption('--db <name>', 'database to load into')
  .requiredOption('--url <url>', 'URL of any node, with credentials')
  .option('--create', 'create the database when it does not exist')
  .option('--batch-size <n>', 'documents per _bulk_docs request', positive, DEFAULT_BATCH_SIZE)
  .option(
    '--concurrency <n>',
    '_bulk_docs requests in flight at once',
    positive,
    DEFAULT_CONCURRENCY,
  )
  .action(
    async (
      file: string,
      options: {
        db: string;
        url: string;
        create?: boolean;
        batchSize: number;
        concurrency: number;
      },
    ) => {
      const { runImport } = await import('./import.js');
      process.exitCode = await runImport(file, {
        db: options.db,
        url: options.url,
        create: options.create === true,
        batchSize: options.batchSize,
        concurrency: options.concurrency,
      });
    },
  );

program
  .command('compact')
  .description('compact a database, and with --wait follow its progress')
  .argument('<db>', 'database name')
  .requiredOption('--url <url>', 'URL of any node, with credentials')
  .option('--wait', 'wait until every node has finished, showing progress')
  .option('--timeout <seconds>', 'with --wait: give up after SECONDS', positive)
  .action(async (db: string, options: { url: string; wait?: boolean; timeout?: number }) => {
    const { DEFAULT_POLL_MS, DEFAULT_WAIT_TIMEOUT_MS, runCompact } = await import('./compact.js');
    process.exitCode = await runCompact(db, {
      url: options.url,
      wait: options.wait === true,
      pollMs: DEFAULT_POLL_MS,
      timeoutMs:
        options.timeout === undefined ? DEFAULT_WAIT_TIMEOUT_MS : options.timeout * MS_PER_SECOND,
    });
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`divan: ${error.message}`);
    process.exit(2);
  }
  // The user fixes a failed system call (a data file that cannot be opened, a full disk), so
  // it gets the operating system's message without a stack trace.
  if (isSystemError(error)) {
    console.error(`divan: ${error.message}`);
    process.exit(1);
  }
  throw error;
}
