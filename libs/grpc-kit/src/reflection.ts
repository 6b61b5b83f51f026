import { create, type DescFile, toBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { loadFileDescriptorSetFromBuffer } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { ServiceDesc } from './types.js';

function collectFiles(file: DescFile, into: Map<string, DescFile>) {
  if (into.has(file.proto.name)) return;
  for (const dependency of file.dependencies) collectFiles(dependency, into);
  into.set(file.proto.name, file);
}

/**
 * Server reflection (grpcurl, Postman, grpcui) from the same descriptors protoc-gen-es
 * embedded in the generated code, so what reflection shows is exactly what is served.
 */
export function reflectionService(services: ServiceDesc[]): ReflectionService {
  const files = new Map<string, DescFile>();
  for (const service of services) collectFiles(service.file, files);
  const set = create(FileDescriptorSetSchema, { file: [...files.values()].map((file) => file.proto) });
  const packageDefinition = loadFileDescriptorSetFromBuffer(
    Buffer.from(toBinary(FileDescriptorSetSchema, set)),
  );
  return new ReflectionService(packageDefinition, { services: services.map((service) => service.typeName) });
}
