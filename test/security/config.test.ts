/**
 * The security settings of `divan start`: flags and environment become a node configuration,
 * and settings that cannot work are rejected with a message naming the flag.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { buildConfig, mergeSettings, type StartFlags } from '../../src/cli/start.js';
import { ConfigError } from '../../src/cluster/config.js';
import { tempDir } from '../support/tmp.js';

async function baseFlags(t: Parameters<typeof tempDir>[0]): Promise<StartFlags> {
  const dir = await tempDir(t);
  const secretFile = join(dir, 'cluster.secret');
  writeFileSync(secretFile, 'a'.repeat(40));
  return {
    name: 'n1',
    data: dir,
    http: '127.0.0.1:5984',
    peer: '127.0.0.1:6984',
    members: 'n1@127.0.0.1:6984',
    secretFile,
    admin: 'admin:pw',
  };
}

test('security settings default to off', async (t) => {
  const config = buildConfig(await baseFlags(t));
  assert.equal(config.cookieSecret, undefined);
  assert.equal(config.defaultSecurity, undefined);
  assert.equal(config.cors, undefined);
  assert.equal(config.httpTls, undefined);
  assert.equal(config.peerTls, undefined);
});

test('security flags build the configuration', async (t) => {
  const flags = await baseFlags(t);
  const cookieFile = join(flags.data!, 'cookie.secret');
  writeFileSync(cookieFile, 'c'.repeat(32));
  const keyFile = join(flags.data!, 'node.key');
  const certFile = join(flags.data!, 'node.crt');
  writeFileSync(keyFile, 'KEY');
  writeFileSync(certFile, 'CERT');
  const config = buildConfig({
    ...flags,
    cookieSecretFile: cookieFile,
    sessionTimeout: 60,
    defaultSecurity: 'everyone',
    corsOrigins: 'https://a.example, https://b.example',
    corsCredentials: true,
    corsMaxAge: 30,
    tlsKey: keyFile,
    tlsCert: certFile,
    peerTlsKey: keyFile,
    peerTlsCert: certFile,
    maxFeedsPerUser: 7,
    requestTimeoutMs: 1_000,
  });
  assert.equal(config.cookieSecret?.toString(), 'c'.repeat(32));
  assert.equal(config.sessionTimeoutS, 60);
  assert.equal(config.defaultSecurity, 'everyone');
  assert.deepEqual(config.cors, {
    origins: ['https://a.example', 'https://b.example'],
    credentials: true,
    maxAgeS: 30,
  });
  assert.equal(config.httpTls?.key.toString(), 'KEY');
  assert.equal(config.peerTls?.cert.toString(), 'CERT');
  assert.equal(config.peerTls?.ca, undefined);
  assert.equal(config.maxFeedsPerCaller, 7);
  assert.equal(config.requestTimeoutMs, 1_000);
});

test('the environment sets security', async (t) => {
  const flags = await baseFlags(t);
  const merged = mergeSettings(flags, {
    DIVAN_DEFAULT_SECURITY: 'everyone',
    DIVAN_CORS_ORIGINS: '*',
  });
  const config = buildConfig(merged);
  assert.equal(config.defaultSecurity, 'everyone');
  assert.deepEqual(config.cors?.origins, ['*']);
});

test('unusable security settings are rejected', async (t) => {
  const flags = await baseFlags(t);
  const shortSecret = join(flags.data!, 'short.secret');
  writeFileSync(shortSecret, 'short');
  const cases: [Partial<StartFlags>, RegExp][] = [
    [{ defaultSecurity: 'open' }, /--default-security 'open'/],
    [{ cookieSecretFile: shortSecret }, /too short/],
    [{ tlsKey: shortSecret }, /--tls-key and --tls-cert/],
    [{ peerTlsCa: shortSecret }, /--peer-tls-ca needs/],
  ];
  for (const [extra, message] of cases) {
    assert.throws(
      () => buildConfig({ ...flags, ...extra }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});
