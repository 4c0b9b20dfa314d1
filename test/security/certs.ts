/**
 * Self-signed certificates for TLS tests, made with the `openssl` command in a temp dir: each
 * is valid for 127.0.0.1 and localhost for one day. Returns null when `openssl` is missing, so
 * the tests that need it can skip with a reason.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestCertificate {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly keyFile: string;
  readonly certFile: string;
}

/** Makes a self-signed EC certificate named `name` in `dir`; null without `openssl`. */
export function selfSignedCertificate(dir: string, name: string): TestCertificate | null {
  const keyFile = join(dir, `${name}.key`);
  const certFile = join(dir, `${name}.crt`);
  const result = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { encoding: 'utf8' },
  );
  if (result.error !== undefined || result.status !== 0) return null;
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), keyFile, certFile };
}
