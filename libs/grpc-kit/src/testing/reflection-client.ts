import { createRequire } from 'node:module';
import { join } from 'node:path';
import { credentials, type GrpcObject, loadPackageDefinition, Metadata } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

// A reflection client built the way grpcurl talks: from the published reflection proto,
// with nothing from this kit, so the test checks the wire rather than our own types.
const require = createRequire(import.meta.url);
const protoRoot = join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto');

type ReflectionResponse = {
  listServicesResponse?: { service: Array<{ name: string }> };
  fileDescriptorResponse?: { fileDescriptorProto: Buffer[] };
  errorResponse?: { errorCode: number; errorMessage: string };
};

type ReflectionStream = NodeJS.EventEmitter & { write(m: object): void; end(): void };

export function reflectionClient(address: string, token?: string) {
  const definition = loadSync('grpc/reflection/v1/reflection.proto', { includeDirs: [protoRoot] });
  const grpc = loadPackageDefinition(definition) as unknown as {
    grpc: {
      reflection: {
        v1: GrpcObject & {
          ServerReflection: new (
            a: string,
            c: unknown,
          ) => { ServerReflectionInfo(m: Metadata): ReflectionStream; close(): void };
        };
      };
    };
  };
  const ask = (request: object) =>
    new Promise<ReflectionResponse>((resolve, reject) => {
      const client = new grpc.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
      const metadata = new Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      const call = client.ServerReflectionInfo(metadata);
      call.on('data', (response: ReflectionResponse) => {
        resolve(response);
        call.end();
      });
      call.on('error', (err: Error) => reject(err));
      call.on('end', () => client.close());
      call.write(request);
    });
  return {
    async listServices(): Promise<string[]> {
      const response = await ask({ listServices: '' });
      return response.listServicesResponse?.service.map((s) => s.name) ?? [];
    },
    /** The raw descriptor bytes, as text, for substring checks. */
    async fileContainingSymbol(symbol: string): Promise<string> {
      const response = await ask({ fileContainingSymbol: symbol });
      return (response.fileDescriptorResponse?.fileDescriptorProto ?? [])
        .map((b) => b.toString('latin1'))
        .join('\n');
    },
  };
}
