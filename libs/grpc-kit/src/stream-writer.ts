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
 * Writes a stream's messages and asks the handler for the next only while it would fit:
 * once the bytes waiting for the transport plus one more message like the last would pass
 * `limitBytes`, it waits for writes to complete, which grpc-js reports only once HTTP/2 has
 * sent them. So a reader that stops reading stops the producer instead of filling the
 * server's memory, holding at most `limitBytes` of messages, or one message when they are
 * as large as the limit (256 KiB chunks: the next is not produced, read or encoded until the
 * previous has left). One message larger than the limit still goes, alone.
 */
export class BoundedStreamWriter {
  #pending = 0;
  /** The last message's size: what the next one is expected to need. */
  #last = 0;
  #wake: (() => void) | undefined;

  constructor(
    private readonly call: WritableCall,
    private readonly schema: DescMessage,
    private readonly limitBytes: number,
  ) {}

  #room(): boolean {
    return this.#pending === 0 || this.#pending + this.#last <= this.limitBytes;
  }

  async write(message: object, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw signal.reason;
    const encoded = encode(this.schema, message);
    const size = encoded.bytes.byteLength;
    this.#pending += size;
    this.#last = size;
    this.call.write(encoded, () => {
      this.#pending -= size;
      if (this.#room()) this.#wake?.();
    });
    if (this.#room()) return;
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
