import { create, type DescMessage, toBinary } from '@bufbuild/protobuf';
import type { ServerDuplexStream, ServerWritableStream } from '@grpc/grpc-js';
import { Encoded } from './encoded.js';

/**
 * Bytes a server stream may have handed to grpc-js but not yet seen leave through HTTP/2
 * flow control. grpc-js's own writable buffers 16 messages whatever their size, so a client
 * that stops reading a 1 MiB-chunk download pinned 16 MiB per stream.
 */
export const DEFAULT_STREAM_BUFFER_BYTES = 256 * 1024;

type WritableCall = ServerWritableStream<object, object> | ServerDuplexStream<object, object>;

/** Encoding here (once; the serializer passes Encoded through) is what lets the writer count bytes. */
function encode(schema: DescMessage, message: object): Encoded {
  if (message instanceof Encoded) return message;
  return new Encoded(schema, toBinary(schema, create(schema, message as Record<string, unknown>)));
}

/**
 * Writes a stream's messages while at most `limitBytes` wait for the transport; past that it
 * waits for writes to complete, which grpc-js reports only once HTTP/2 has sent them, so a
 * reader that stops reading stops the producer instead of filling the server's memory. One
 * message larger than the limit still goes, alone.
 */
export class BoundedStreamWriter {
  #pending = 0;
  #wake: (() => void) | undefined;

  constructor(
    private readonly call: WritableCall,
    private readonly schema: DescMessage,
    private readonly limitBytes: number,
  ) {}

  async write(message: object, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    const encoded = encode(this.schema, message);
    const size = encoded.bytes.byteLength;
    this.#pending += size;
    this.call.write(encoded, () => {
      this.#pending -= size;
      if (this.#pending <= this.limitBytes) this.#wake?.();
    });
    if (this.#pending <= this.limitBytes) return;
    await new Promise<void>((resolve, reject) => {
      // A cancelled call never completes its writes (grpc-js drops them): the signal ends the wait.
      const onAbort = () => {
        this.#wake = undefined;
        reject(signal.reason);
      };
      this.#wake = () => {
        this.#wake = undefined;
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
