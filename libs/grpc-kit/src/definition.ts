import { create, type DescMessage, type DescMethod, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import type { ServiceDesc } from './types.js';

/** The HTTP/2 path grpc-js routes on: `/package.Service/Method`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

function serializer(schema: DescMessage) {
  // Handlers may return init objects; create() fills defaults and is a no-op on messages.
  return (value: object) => Buffer.from(toBinary(schema, create(schema, value as Record<string, unknown>)));
}

function deserializer(schema: DescMessage) {
  return (bytes: Buffer) => fromBinary(schema, bytes);
}

export function methodDefinition(method: DescMethod): MethodDefinition<object, object> {
  return {
    path: methodPath(method),
    requestStream: method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming',
    responseStream: method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming',
    requestSerialize: serializer(method.input),
    requestDeserialize: deserializer(method.input),
    responseSerialize: serializer(method.output),
    responseDeserialize: deserializer(method.output),
    originalName: method.localName,
  };
}

/** A grpc-js service definition for a protobuf-es service descriptor. */
export function serviceDefinition(service: ServiceDesc): ServiceDefinition {
  return Object.fromEntries(service.methods.map((method) => [method.name, methodDefinition(method)]));
}
