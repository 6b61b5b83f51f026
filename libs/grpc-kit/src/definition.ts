import { create, type DescMessage, type DescMethod, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { Encoded } from './encoded.js';
import type { ServiceDesc } from './types.js';

/** The HTTP/2 path grpc-js routes on: `/package.Service/Method`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function serializer(schema: DescMessage) {
  return (value: object) => {
    if (value instanceof Encoded) {
      if (value.schema.typeName !== schema.typeName) {
        throw new Error(`encoded ${value.schema.typeName} where ${schema.typeName} was due`);
      }
      return Buffer.from(value.bytes.buffer, value.bytes.byteOffset, value.bytes.byteLength);
    }
    // Handlers may return init objects; create() fills defaults and is a no-op on messages.
    return Buffer.from(toBinary(schema, create(schema, value as Record<string, unknown>)));
  };
}

function deserializer(schema: DescMessage) {
  return (bytes: Buffer) => fromBinary(schema, bytes);
}

/**
 * A request whose bytes are not a valid message of its type. grpc-js answers a deserializer
 * that throws with INTERNAL, which says "bug"; the kit's servers decode leniently instead and
 * answer this with INVALID_ARGUMENT (see server-adapter.ts), because the fault is the caller's.
 */
export class UndecodableRequest {
  constructor(
    readonly typeName: string,
    readonly reason: string,
  ) {}
}

/** A hand-written request decoder for a hot method; it throws on bytes it cannot decode. */
export type RequestDecoder = (bytes: Uint8Array) => object;

function lenientDeserializer(schema: DescMessage, decode: RequestDecoder = (b) => fromBinary(schema, b)) {
  return (bytes: Buffer): object => {
    try {
      return decode(bytes);
    } catch (err) {
      // RangeError too: a message nested deeper than the stack allows is refused, not fatal.
      return new UndecodableRequest(schema.typeName, err instanceof Error ? err.message : String(err));
    }
  };
}

export interface DefinitionOptions {
  /** Server side: hand undecodable requests to the handler as {@link UndecodableRequest}. */
  lenientRequests?: boolean;
  /** Server side: decoders that replace protobuf-es for some methods' requests, by method name. */
  requestDecoders?: Readonly<Record<string, RequestDecoder | undefined>>;
}

export function methodDefinition(
  method: DescMethod,
  options: DefinitionOptions = {},
): MethodDefinition<object, object> {
  return {
    path: methodPath(method),
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    requestSerialize: serializer(method.input),
    requestDeserialize: options.lenientRequests
      ? lenientDeserializer(method.input, options.requestDecoders?.[method.name])
      : deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.localName,
  };
}

/** A grpc-js service definition for a protobuf-es service descriptor. */
export function serviceDefinition(service: ServiceDesc, options: DefinitionOptions = {}): ServiceDefinition {
  return Object.fromEntries(
    service.methods.map((method) => [method.name, methodDefinition(method, options)]),
  );
}
