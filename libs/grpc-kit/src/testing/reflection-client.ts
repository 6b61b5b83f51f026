import {
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from '@ballast/contracts/grpc/reflection/v1/reflection_pb.js';
import { create, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { type FileDescriptorProto, FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Client, credentials, Metadata } from '@grpc/grpc-js';

// A reflection client the way grpcurl talks: the published reflection messages over a bare
// grpc-js stream, with nothing of this kit's server or client code, so tests check the wire.
// v1alpha is the same protocol under another package, so one set of messages serves both.

export type ReflectionRequest = MessageInitShape<typeof ServerReflectionRequestSchema>;

export interface ReflectionClientOptions {
  /** Sent as `authorization: Bearer <token>`. */
  token?: string | undefined;
  version?: 'v1' | 'v1alpha';
}

export function reflectionClient(address: string, options: ReflectionClientOptions | string = {}) {
  const { token, version = 'v1' } = typeof options === 'string' ? { token: options } : options;
  const path = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;

  /** Sends the requests on one stream and resolves with its answers, in order. */
  const exchange = (requests: ReflectionRequest[]) =>
    new Promise<ServerReflectionResponse[]>((resolve, reject) => {
      const client = new Client(address, credentials.createInsecure());
      const metadata = new Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      const call = client.makeBidiStreamRequest(
        path,
        (m: ServerReflectionRequest) => Buffer.from(toBinary(ServerReflectionRequestSchema, m)),
        (b: Buffer) => fromBinary(ServerReflectionResponseSchema, b),
        metadata,
      );
      const responses: ServerReflectionResponse[] = [];
      call.on('data', (response: ServerReflectionResponse) => responses.push(response));
      call.on('error', (err: Error) => {
        client.close();
        reject(err);
      });
      call.on('end', () => {
        client.close();
        resolve(responses);
      });
      for (const request of requests) call.write(create(ServerReflectionRequestSchema, request));
      call.end();
    });

  const files = async (request: ReflectionRequest): Promise<FileDescriptorProto[]> => {
    const [response] = await exchange([request]);
    const answer = response?.messageResponse;
    if (answer?.case !== 'fileDescriptorResponse') {
      throw new Error(`reflection answered ${answer?.case ?? 'nothing'}: ${JSON.stringify(answer?.value)}`);
    }
    return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes));
  };

  return {
    exchange,
    async listServices(): Promise<string[]> {
      const [response] = await exchange([{ messageRequest: { case: 'listServices', value: '' } }]);
      const answer = response?.messageResponse;
      return answer?.case === 'listServicesResponse' ? answer.value.service.map((s) => s.name) : [];
    },
    /** The file declaring `symbol` first, then those it imports, decoded. */
    fileContainingSymbol(symbol: string): Promise<FileDescriptorProto[]> {
      return files({ messageRequest: { case: 'fileContainingSymbol', value: symbol } });
    },
    fileByFilename(name: string): Promise<FileDescriptorProto[]> {
      return files({ messageRequest: { case: 'fileByFilename', value: name } });
    },
  };
}
