import { InferenceService } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { IngestService } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { MonitorService } from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { Health } from '@ballast/contracts/grpc/health/v1/health_pb.js';
import {
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from '@ballast/contracts/grpc/reflection/v1/reflection_pb.js';
import { GRPCInferenceService } from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  type DescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReflectionIndex, reflectionService } from './reflection.js';
import { type ReflectionRequest, reflectionClient } from './testing/reflection-client.js';

const SERVED = [IngestService, InferenceService, GRPCInferenceService, MonitorService, Health];

function ask(index: ReflectionIndex, request: ReflectionRequest, sent = new Set<string>()) {
  return index.answer(create(ServerReflectionRequestSchema, request), sent);
}

function filesOf(answer: ServerReflectionResponse | undefined) {
  const response = answer?.messageResponse;
  if (response?.case !== 'fileDescriptorResponse') throw new Error(`not files: ${response?.case}`);
  return response.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
}

function errorOf(answer: ServerReflectionResponse) {
  const response = answer.messageResponse;
  if (response?.case !== 'errorResponse') throw new Error(`not an error: ${response?.case}`);
  return response.value;
}

const symbol = (value: string): ReflectionRequest => ({
  messageRequest: { case: 'fileContainingSymbol', value },
});

function allMessages(messages: DescriptorProto[]): DescriptorProto[] {
  return messages.flatMap((m) => [m, ...allMessages(m.nestedType)]);
}

describe('reflection answers', () => {
  const index = new ReflectionIndex(SERVED);

  it('sends a file with its real imports, each well-known type in its own file', () => {
    const files = filesOf(ask(index, symbol('ballast.ingest.v1.IngestService')));
    const wkt = [
      'google/protobuf/duration.proto',
      'google/protobuf/struct.proto',
      'google/protobuf/timestamp.proto',
    ];
    expect(files.map((f) => f.name)).toEqual(['ballast/ingest/v1/ingest.proto', ...wkt]);
    expect(files[0]?.dependency).toEqual(wkt);
    expect(files[1]?.messageType.map((m) => m.name)).toEqual(['Duration']);
    expect(files[2]?.messageType.map((m) => m.name)).toEqual(['Struct', 'Value', 'ListValue']);
    expect(files[2]?.enumType.map((e) => e.name)).toEqual(['NullValue']);
    expect(files[3]?.messageType.map((m) => m.name)).toEqual(['Timestamp']);
    expect(files[3]?.dependency).toEqual([]);
    // The bytes are protoc's descriptor, as protobuf-es embedded it.
    expect(toBinary(FileDescriptorProtoSchema, files[0] as FileDescriptorProto)).toEqual(
      toBinary(FileDescriptorProtoSchema, IngestService.file.proto),
    );
  });

  it('sends imports transitively, and each only once per stream', () => {
    const sent = new Set<string>();
    const feature = filesOf(ask(index, symbol('ballast.feature.v1.FeatureViewDefinition'), sent));
    expect(feature.map((f) => f.name)).toEqual([
      'ballast/feature/v1/feature.proto',
      'google/protobuf/duration.proto',
      'google/protobuf/timestamp.proto',
    ]);
    // monitor imports feature, duration and timestamp: all sent already on this stream.
    const monitor = filesOf(ask(index, symbol('ballast.monitor.v1.MonitorService'), sent));
    expect(monitor.map((f) => f.name)).toEqual(['ballast/monitor/v1/monitor.proto']);
    expect(monitor[0]?.dependency).toContain('ballast/feature/v1/feature.proto');
    // The file asked for comes even when it was sent before.
    const again = filesOf(
      ask(
        index,
        { messageRequest: { case: 'fileByFilename', value: 'google/protobuf/timestamp.proto' } },
        sent,
      ),
    );
    expect(again.map((f) => f.name)).toEqual(['google/protobuf/timestamp.proto']);
    // A fresh stream gets everything again.
    expect(filesOf(ask(index, symbol('ballast.monitor.v1.MonitorService'))).map((f) => f.name)).toEqual([
      'ballast/monitor/v1/monitor.proto',
      'ballast/feature/v1/feature.proto',
      'google/protobuf/duration.proto',
      'google/protobuf/timestamp.proto',
    ]);
  });

  it('marks only the generated entries of map fields as map entries, and names types in full', () => {
    const files = [
      ...filesOf(ask(index, symbol('ballast.inference.v1.InferenceService'))),
      ...filesOf(ask(index, symbol('inference.GRPCInferenceService'))),
    ];
    const messages = files.flatMap((f) => allMessages(f.messageType).map((m) => [f.name, m] as const));
    const byName = new Map(messages.map(([, m]) => [m.name, m]));
    for (const name of ['Row', 'EntityKey', 'EntityLookup', 'ModelInferRequest', 'InferInputTensor']) {
      const message = byName.get(name);
      expect(message, name).toBeDefined();
      expect(message?.options?.mapEntry ?? false, name).toBe(false);
    }
    expect(byName.get('Row')?.nestedType.map((n) => [n.name, n.options?.mapEntry])).toEqual([
      ['FeaturesEntry', true],
      ['InputsEntry', true],
      ['SegmentsEntry', true],
    ]);
    for (const [, message] of messages) {
      // An entry is only ever a nested XxxEntry that a map field of its parent uses.
      if (message.options?.mapEntry) expect(message.name).toMatch(/Entry$/);
      for (const field of message.field) {
        if (field.typeName) expect(field.typeName, `${message.name}.${field.name}`).toMatch(/^\./);
      }
    }
    for (const file of files) {
      for (const method of file.service.flatMap((s) => s.method)) {
        expect(method.inputType).toMatch(/^\./);
        expect(method.outputType).toMatch(/^\./);
      }
    }
  });

  it('finds the file of services, methods, messages, nested ones, fields, enums and enum values', () => {
    const fileOf = (name: string) => filesOf(ask(index, symbol(name)))[0]?.name;
    expect(fileOf('ballast.inference.v1.InferenceService.Predict')).toBe(
      'ballast/inference/v1/inference.proto',
    );
    expect(fileOf('ballast.inference.v1.Row.FeaturesEntry')).toBe('ballast/inference/v1/inference.proto');
    expect(fileOf('ballast.inference.v1.Row.entity_key')).toBe('ballast/inference/v1/inference.proto');
    expect(fileOf('inference.ModelInferRequest.InferInputTensor')).toBe('inference/grpc_predict_v2.proto');
    expect(fileOf('grpc.health.v1.HealthCheckResponse.ServingStatus')).toBe('grpc/health/v1/health.proto');
    // Enum values are scoped beside their enum, as protobuf names them.
    expect(fileOf('grpc.health.v1.HealthCheckResponse.SERVING')).toBe('grpc/health/v1/health.proto');
    expect(fileOf('google.protobuf.NullValue')).toBe('google/protobuf/struct.proto');
  });

  it('answers what it does not know with error_response NOT_FOUND, and empty requests with UNIMPLEMENTED', () => {
    expect(errorOf(ask(index, symbol('ballast.nope.v1.Thing')))).toMatchObject({
      errorCode: status.NOT_FOUND,
      errorMessage: expect.stringContaining('ballast.nope.v1.Thing'),
    });
    expect(
      errorOf(ask(index, { messageRequest: { case: 'fileByFilename', value: 'nope.proto' } })).errorCode,
    ).toBe(status.NOT_FOUND);
    const extension = errorOf(
      ask(index, {
        messageRequest: {
          case: 'fileContainingExtension',
          value: { containingType: 'ballast.ingest.v1.Dataset', extensionNumber: 1000 },
        },
      }),
    );
    expect(extension.errorCode).toBe(status.NOT_FOUND);
    expect(extension.errorMessage).toContain('no extension 1000 of "ballast.ingest.v1.Dataset"');
    expect(
      ask(index, {
        messageRequest: { case: 'allExtensionNumbersOfType', value: 'ballast.ingest.v1.Dataset' },
      }).messageResponse,
    ).toMatchObject({
      case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'ballast.ingest.v1.Dataset', extensionNumber: [] },
    });
    expect(
      errorOf(ask(index, { messageRequest: { case: 'allExtensionNumbersOfType', value: 'nope.Thing' } }))
        .errorCode,
    ).toBe(status.NOT_FOUND);
    expect(errorOf(ask(index, {})).errorCode).toBe(status.UNIMPLEMENTED);
  });
});

describe('reflection on the wire', () => {
  // Reflection alone, describing services this server does not implement: what it answers
  // comes from the descriptors, not from what is registered.
  const server = new Server();
  let address: string;

  beforeAll(async () => {
    reflectionService(SERVED).addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    address = `127.0.0.1:${port}`;
  });

  afterAll(() => server.forceShutdown());

  const conversation: ReflectionRequest[] = [
    { host: 'h', messageRequest: { case: 'listServices', value: '' } },
    symbol('ballast.monitor.v1.MonitorService'),
    symbol('ballast.nope.v1.Thing'),
    symbol('ballast.ingest.v1.IngestService'),
    { messageRequest: { case: 'fileByFilename', value: 'inference/grpc_predict_v2.proto' } },
  ];

  it('answers every request of a stream in order, errors included, with the request echoed', async () => {
    const answers = await reflectionClient(address).exchange(conversation);
    expect(answers.map((a) => a.messageResponse.case)).toEqual([
      'listServicesResponse',
      'fileDescriptorResponse',
      'errorResponse',
      'fileDescriptorResponse',
      'fileDescriptorResponse',
    ]);
    expect(answers[0]?.validHost).toBe('h');
    expect(answers[2]?.originalRequest?.messageRequest).toEqual(conversation[2]?.messageRequest);
    const listed = answers[0]?.messageResponse.value as { service: Array<{ name: string }> };
    expect(listed.service.map((s) => s.name)).toEqual([
      ...SERVED.map((s) => s.typeName),
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
    ]);
    // timestamp.proto came with monitor's files: ingest's answer leaves it out.
    expect(filesOf(answers[3]).map((f) => f.name)).toEqual([
      'ballast/ingest/v1/ingest.proto',
      'google/protobuf/struct.proto',
    ]);
  });

  it('describes the reflection services too', async () => {
    const [file] = await reflectionClient(address).fileContainingSymbol(
      'grpc.reflection.v1alpha.ServerReflection',
    );
    expect(file?.name).toBe('grpc/reflection/v1alpha/reflection.proto');
  });

  it('answers v1alpha exactly as v1', async () => {
    const [v1, alpha] = await Promise.all([
      reflectionClient(address).exchange(conversation),
      reflectionClient(address, { version: 'v1alpha' }).exchange(conversation),
    ]);
    expect(alpha).toEqual(v1);
  });
});
