import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoService } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, RpcError } from './client.js';
import { type GrpcServer, serve, startGrpcServer } from './server.js';
import { echoService } from './testing/echo.js';
import { channelCredentialsFromEnv, serverCredentialsFromEnv } from './tls.js';

const log = { info: () => {}, warn: () => {}, error: () => {} };
const dir = mkdtempSync(join(tmpdir(), 'grpc-kit-tls-'));
const file = (name: string) => join(dir, name);

/** A CA and two leaves it signs (server for 127.0.0.1, a client), plus a leaf from another CA. */
function makeCertificates() {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ca = (name: string) =>
    openssl(
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
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.pem`),
    );
  const leaf = (name: string, signer: string, san: string) => {
    openssl(
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file(`${signer}.pem`),
      '-CAkey',
      file(`${signer}.key`),
      '-CAcreateserial',
      '-days',
      '1',
      '-out',
      file(`${name}.pem`),
      '-extfile',
      file(`${name}.ext`),
    );
    return san;
  };
  ca('ca');
  ca('other-ca');
  execFileSync('sh', [
    '-c',
    `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${file('server.ext')}; printf 'subjectAltName=DNS:client\\n' > ${file('client.ext')}; cp ${file('client.ext')} ${file('stranger.ext')}`,
  ]);
  leaf('server', 'ca', 'IP:127.0.0.1');
  leaf('client', 'ca', 'DNS:client');
  leaf('stranger', 'other-ca', 'DNS:client');
}

async function echo(address: string, env: Record<string, string>) {
  const client = createClient(EchoService, {
    address,
    deadlineMs: 5_000,
    retry: false,
    credentials: channelCredentialsFromEnv(env),
  });
  try {
    return await client.echo({ message: 'hi' }).then(
      (r) => r.message,
      (e: unknown) => e,
    );
  } finally {
    client.close();
  }
}

describe('TLS from BALLAST_TLS_*', () => {
  let tls: GrpcServer;
  let mtls: GrpcServer;
  beforeAll(async () => {
    makeCertificates();
    tls = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
      credentials: serverCredentialsFromEnv({
        BALLAST_TLS_CERT: file('server.pem'),
        BALLAST_TLS_KEY: file('server.key'),
      }),
    });
    mtls = await startGrpcServer({
      services: [serve(EchoService, echoService)],
      host: '127.0.0.1',
      port: 0,
      log,
      credentials: serverCredentialsFromEnv({
        BALLAST_TLS_CERT: file('server.pem'),
        BALLAST_TLS_KEY: file('server.key'),
        BALLAST_TLS_CA: file('ca.pem'),
      }),
    });
  });
  afterAll(async () => {
    await tls?.shutdown();
    await mtls?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a client that trusts the CA, and refuses a plaintext one', async () => {
    const address = `127.0.0.1:${tls.port}`;
    expect(await echo(address, { BALLAST_TLS_CA: file('ca.pem') })).toBe('hi');
    const plaintext = await echo(address, {});
    expect(plaintext).toBeInstanceOf(RpcError);
    expect((plaintext as RpcError).code).toBe(status.UNAVAILABLE);
  });

  it('under mTLS, serves a client with a certificate from the CA only', async () => {
    const address = `127.0.0.1:${mtls.port}`;
    const withCert = {
      BALLAST_TLS_CA: file('ca.pem'),
      BALLAST_TLS_CLIENT_CERT: file('client.pem'),
      BALLAST_TLS_CLIENT_KEY: file('client.key'),
    };
    expect(await echo(address, withCert)).toBe('hi');
    for (const env of [
      { BALLAST_TLS_CA: file('ca.pem') },
      {
        ...withCert,
        BALLAST_TLS_CLIENT_CERT: file('stranger.pem'),
        BALLAST_TLS_CLIENT_KEY: file('stranger.key'),
      },
    ]) {
      const refused = await echo(address, env);
      expect(refused).toBeInstanceOf(RpcError);
      expect((refused as RpcError).code).toBe(status.UNAVAILABLE);
    }
  });

  it('says which variable is missing', () => {
    expect(() => serverCredentialsFromEnv({ BALLAST_TLS_CERT: file('server.pem') })).toThrow(
      /BALLAST_TLS_CERT and BALLAST_TLS_KEY/,
    );
    expect(() => serverCredentialsFromEnv({ BALLAST_TLS_CA: file('ca.pem') })).toThrow(/BALLAST_TLS_CA/);
    expect(() => channelCredentialsFromEnv({ BALLAST_TLS_CA: file('nope.pem') })).toThrow(/cannot read/);
  });
});
