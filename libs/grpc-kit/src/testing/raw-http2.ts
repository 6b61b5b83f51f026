// gRPC spoken by hand over node:http2, for what grpc-js clients never do: half a message, a
// stream never read, a connection left silent.
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  type IncomingHttpHeaders,
} from 'node:http2';

/** A plaintext HTTP/2 session to `host:port`; its errors are the test's to observe, not to throw. */
export function rawSession(address: string): ClientHttp2Session {
  const session = connect(`http://${address}`);
  session.on('error', () => {});
  return session;
}

export function grpcHeaders(path: string) {
  return { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' };
}

/** One gRPC length-prefixed frame. */
export function grpcFrame(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(bytes.byteLength, 1);
  return Buffer.concat([header, bytes]);
}

/** The status of a raw call: in its trailers, or in its only headers (a trailers-only answer). */
export function grpcStatus(stream: ClientHttp2Stream): Promise<{ code: number; message: string }> {
  return new Promise((resolve, reject) => {
    const take = (headers: IncomingHttpHeaders) => {
      const code = headers['grpc-status'];
      if (code !== undefined)
        resolve({ code: Number(code), message: decodeURIComponent(String(headers['grpc-message'] ?? '')) });
    };
    stream.on('response', take);
    stream.on('trailers', take);
    stream.on('close', () => reject(new Error(`stream closed without a status (rst ${stream.rstCode})`)));
  });
}
