import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';

/**
 * TLS for gRPC, from the environment every process shares (declared in @ballast/config):
 *
 * - `BALLAST_TLS_CERT`, `BALLAST_TLS_KEY`: the process's certificate chain and private key
 *   (PEM files, or PEM text). Set on a server: it serves TLS only.
 * - `BALLAST_TLS_CA`: the CA bundle that signs the peers. On a server it also requires and
 *   verifies client certificates (mutual TLS); on a client it verifies the server.
 * - `BALLAST_TLS_CLIENT_CERT`, `BALLAST_TLS_CLIENT_KEY`: the identity a client presents under
 *   mutual TLS; default `BALLAST_TLS_CERT`/`BALLAST_TLS_KEY` (a service calling another uses
 *   its own certificate).
 *
 * A client uses TLS as soon as any of these is set, so services that call each other and the
 * SDK switch together. None set: plaintext, as before.
 */
export interface TlsEnv {
  BALLAST_TLS_CERT?: string | undefined;
  BALLAST_TLS_KEY?: string | undefined;
  BALLAST_TLS_CA?: string | undefined;
  BALLAST_TLS_CLIENT_CERT?: string | undefined;
  BALLAST_TLS_CLIENT_KEY?: string | undefined;
}

function pem(value: string | undefined, name: string): Buffer | null {
  const v = value?.trim();
  if (!v) return null;
  if (v.startsWith('-----BEGIN')) return Buffer.from(v);
  try {
    return readFileSync(v);
  } catch (err) {
    throw new Error(`${name}: cannot read ${v}: ${(err as Error).message}`);
  }
}

/** The credentials a server binds with: TLS when a certificate and key are set, mTLS when a CA is too. */
export function serverCredentialsFromEnv(env: TlsEnv = process.env): ServerCredentials {
  const cert = pem(env.BALLAST_TLS_CERT, 'BALLAST_TLS_CERT');
  const key = pem(env.BALLAST_TLS_KEY, 'BALLAST_TLS_KEY');
  const ca = pem(env.BALLAST_TLS_CA, 'BALLAST_TLS_CA');
  if (!cert && !key) {
    if (ca) throw new Error('BALLAST_TLS_CA is set without BALLAST_TLS_CERT and BALLAST_TLS_KEY');
    return ServerCredentials.createInsecure();
  }
  if (!cert || !key) throw new Error('BALLAST_TLS_CERT and BALLAST_TLS_KEY must be set together');
  // A CA makes client certificates mandatory: checkClientCertificate = true.
  return ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], ca !== null);
}

/** The credentials a client connects with: TLS (verifying against BALLAST_TLS_CA) when any TLS variable is set. */
export function channelCredentialsFromEnv(env: TlsEnv = process.env): ChannelCredentials {
  const anySet = [
    env.BALLAST_TLS_CERT,
    env.BALLAST_TLS_KEY,
    env.BALLAST_TLS_CA,
    env.BALLAST_TLS_CLIENT_CERT,
    env.BALLAST_TLS_CLIENT_KEY,
  ].some((v) => v?.trim());
  if (!anySet) return credentials.createInsecure();
  const ca = pem(env.BALLAST_TLS_CA, 'BALLAST_TLS_CA');
  const clientCert = env.BALLAST_TLS_CLIENT_CERT?.trim() ? 'BALLAST_TLS_CLIENT_CERT' : 'BALLAST_TLS_CERT';
  const clientKey = env.BALLAST_TLS_CLIENT_KEY?.trim() ? 'BALLAST_TLS_CLIENT_KEY' : 'BALLAST_TLS_KEY';
  const cert = pem(env[clientCert], clientCert);
  const key = pem(env[clientKey], clientKey);
  if ((cert === null) !== (key === null))
    throw new Error(`${clientCert} and ${clientKey} must be set together`);
  return credentials.createSsl(ca, key, cert);
}
