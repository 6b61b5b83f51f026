import * as v1 from '@ballast/contracts/grpc/reflection/v1/reflection_pb.js';
import * as v1alpha from '@ballast/contracts/grpc/reflection/v1alpha/reflection_pb.js';
import { create, type DescFile, fromBinary, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import {
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import { type Server, status } from '@grpc/grpc-js';
import { serviceDefinition } from './definition.js';
import { encoded } from './encoded.js';
import { type AdapterOptions, adaptService } from './server-adapter.js';
import type { ServiceDesc } from './types.js';

type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;
type ResponseInit = MessageInitShape<typeof v1.ServerReflectionResponseSchema>;

/** Both protocol versions are served, and listed, as grpc-go and grpc-java do. */
const REFLECTION_SERVICES: ServiceDesc[] = [v1.ServerReflection, v1alpha.ServerReflection];

/**
 * What reflection knows: every file the served services are declared in and, transitively,
 * what they import, with the names a client may ask for, as grpc-go's registry resolves them:
 * services, methods, messages (nested too), fields, oneofs, enums, enum values, extensions.
 */
export class ReflectionIndex {
  readonly services: readonly string[];
  readonly #files = new Map<string, DescFile>();
  readonly #bytes = new Map<string, Uint8Array>();
  readonly #symbols = new Map<string, DescFile>();
  readonly #messages = new Set<string>();
  /** Extendee full name -> field number -> the file declaring the extension. */
  readonly #extensions = new Map<string, Map<number, DescFile>>();

  constructor(services: readonly ServiceDesc[]) {
    this.services = [...new Set(services.map((s) => s.typeName))];
    for (const service of services) this.#add(service.file);
  }

  #add(file: DescFile) {
    if (this.#files.has(file.proto.name)) return;
    this.#files.set(file.proto.name, file);
    for (const dependency of file.dependencies) this.#add(dependency);
    const proto = file.proto;
    const scope = proto.package;
    const name = (parent: string, local: string) => (parent ? `${parent}.${local}` : local);
    const symbol = (full: string) => {
      if (!this.#symbols.has(full)) this.#symbols.set(full, file);
    };
    const extension = (field: FieldDescriptorProto) => {
      const extendee = field.extendee.replace(/^\./, '');
      const numbers = this.#extensions.get(extendee) ?? new Map<number, DescFile>();
      this.#extensions.set(extendee, numbers);
      numbers.set(field.number, file);
    };
    // An enum's values are its siblings in protobuf's scoping (`pkg.VALUE`, `pkg.Msg.VALUE`).
    const enumeration = (parent: string, e: EnumDescriptorProto) => {
      symbol(name(parent, e.name));
      for (const value of e.value) symbol(name(parent, value.name));
    };
    const message = (parent: string, m: DescriptorProto) => {
      const full = name(parent, m.name);
      symbol(full);
      this.#messages.add(full);
      for (const field of m.field) symbol(name(full, field.name));
      for (const oneof of m.oneofDecl) symbol(name(full, oneof.name));
      for (const nested of m.nestedType) message(full, nested);
      for (const e of m.enumType) enumeration(full, e);
      for (const field of m.extension) {
        symbol(name(full, field.name));
        extension(field);
      }
    };
    for (const m of proto.messageType) message(scope, m);
    for (const e of proto.enumType) enumeration(scope, e);
    for (const field of proto.extension) {
      symbol(name(scope, field.name));
      extension(field);
    }
    for (const service of proto.service) {
      const full = name(scope, service.name);
      symbol(full);
      for (const method of service.method) symbol(name(full, method.name));
    }
  }

  /** The serialized FileDescriptorProto, exactly as protoc produced it (protobuf-es keeps it). */
  #encoded(file: DescFile): Uint8Array {
    let bytes = this.#bytes.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.#bytes.set(file.proto.name, bytes);
    }
    return bytes;
  }

  /**
   * The file first, then what it imports, transitively (breadth first), leaving out the
   * imports already sent on this stream: grpc-go's answer, so a strict client can build
   * every file it was given and is never sent one twice for nothing.
   */
  #withDependencies(file: DescFile, sent: Set<string>): Uint8Array[] {
    const out: Uint8Array[] = [];
    const queue = [file];
    for (let next = queue.shift(); next; next = queue.shift()) {
      if (out.length === 0 || !sent.has(next.proto.name)) {
        sent.add(next.proto.name);
        out.push(this.#encoded(next));
      }
      queue.push(...next.dependencies);
    }
    return out;
  }

  /** One answer of the ServerReflectionInfo stream; errors are answers too, and the stream goes on. */
  answer(request: Request, sent: Set<string>): Response {
    const reply = (messageResponse: ResponseInit['messageResponse']): Response =>
      create(v1.ServerReflectionResponseSchema, {
        validHost: request.host,
        originalRequest: request,
        ...(messageResponse ? { messageResponse } : {}),
      });
    const error = (code: status, message: string) =>
      reply({ case: 'errorResponse', value: { errorCode: code, errorMessage: message } });
    const files = (file: DescFile) =>
      reply({
        case: 'fileDescriptorResponse',
        value: { fileDescriptorProto: this.#withDependencies(file, sent) },
      });
    const asked = request.messageRequest;
    switch (asked.case) {
      case 'listServices':
        return reply({
          case: 'listServicesResponse',
          value: { service: this.services.map((name) => ({ name })) },
        });
      case 'fileByFilename': {
        const file = this.#files.get(asked.value);
        return file ? files(file) : error(status.NOT_FOUND, `file not found: ${JSON.stringify(asked.value)}`);
      }
      case 'fileContainingSymbol': {
        const file = this.#symbols.get(asked.value.replace(/^\./, ''));
        return file
          ? files(file)
          : error(status.NOT_FOUND, `symbol not found: ${JSON.stringify(asked.value)}`);
      }
      case 'fileContainingExtension': {
        const { containingType, extensionNumber } = asked.value;
        const file = this.#extensions.get(containingType.replace(/^\./, ''))?.get(extensionNumber);
        return file
          ? files(file)
          : error(
              status.NOT_FOUND,
              `extension not found: no extension ${extensionNumber} of ${JSON.stringify(containingType)} is declared in the served files`,
            );
      }
      case 'allExtensionNumbersOfType': {
        const type = asked.value.replace(/^\./, '');
        if (!this.#messages.has(type)) {
          return error(status.NOT_FOUND, `message type not found: ${JSON.stringify(asked.value)}`);
        }
        return reply({
          case: 'allExtensionNumbersResponse',
          value: {
            baseTypeName: type,
            extensionNumber: [...(this.#extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b),
          },
        });
      }
      default:
        return error(status.UNIMPLEMENTED, 'message_request is empty or of a kind this server does not know');
    }
  }
}

export interface ReflectionService {
  readonly index: ReflectionIndex;
  /**
   * Adds grpc.reflection.v1 and v1alpha to a grpc-js server, through the kit's adapter (so the
   * server's interceptors, auth included, see reflection calls as any other).
   */
  addToServer(server: Server, options?: AdapterOptions): void;
}

const QUIET: AdapterOptions = {
  interceptors: [],
  defaultDeadlineMs: undefined,
  log: { error: (obj, msg) => console.error(msg ?? 'reflection failed', obj) },
};

/**
 * Server reflection (grpcurl, grpcui, Postman) served straight from the descriptors
 * protoc-gen-es embedded in the generated code, so what reflection shows is exactly what is
 * served: each file as protoc wrote it, with its real imports, well-known types as their own
 * files. The reflection services themselves are listed and described too.
 */
export function reflectionService(services: ServiceDesc[]): ReflectionService {
  const index = new ReflectionIndex([...services, ...REFLECTION_SERVICES]);
  const v1Impl = {
    async *serverReflectionInfo(requests: AsyncIterable<Request>) {
      const sent = new Set<string>();
      for await (const request of requests) yield index.answer(request, sent);
    },
  };
  // v1alpha is the same protocol under another package: the same bytes either way.
  const v1alphaImpl = {
    async *serverReflectionInfo(requests: AsyncIterable<v1alpha.ServerReflectionRequest>) {
      const sent = new Set<string>();
      for await (const alpha of requests) {
        const request = fromBinary(
          v1.ServerReflectionRequestSchema,
          toBinary(v1alpha.ServerReflectionRequestSchema, alpha),
        );
        const response = index.answer(request, sent);
        yield encoded(
          v1alpha.ServerReflectionResponseSchema,
          toBinary(v1.ServerReflectionResponseSchema, response),
        );
      }
    },
  };
  return {
    index,
    addToServer(server, options = QUIET) {
      server.addService(
        serviceDefinition(v1.ServerReflection, { lenientRequests: true }),
        adaptService(v1.ServerReflection, v1Impl, options),
      );
      server.addService(
        serviceDefinition(v1alpha.ServerReflection, { lenientRequests: true }),
        adaptService(v1alpha.ServerReflection, v1alphaImpl, options),
      );
    },
  };
}
