import { BinaryReader } from '@bufbuild/protobuf/wire';
import {
  Server,
  ServerCredentials,
  type ServiceDefinition,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';

/**
 * A minimal OTLP/gRPC trace receiver for tests: services export to it as they would to Jaeger
 * or a collector (OTEL_EXPORTER_OTLP_ENDPOINT), and it decodes what it receives into plain
 * spans. The decoder reads the fields of opentelemetry/proto/{collector/trace,trace,common,
 * resource}/v1 that tests look at, by field number, and skips the rest.
 */

export type AttributeValue = string | number | boolean | bigint | AttributeValue[] | undefined;
export type Attributes = Record<string, AttributeValue>;

/** OTLP's Span.SpanKind. */
export enum SpanKind {
  UNSPECIFIED = 0,
  INTERNAL = 1,
  SERVER = 2,
  CLIENT = 3,
  PRODUCER = 4,
  CONSUMER = 5,
}

export interface ReceivedLink {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

export interface ReceivedSpan {
  /** The resource's service.name. */
  service: string;
  /** Hex, as W3C traceparent writes them; parentSpanId is '' for a root span. */
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: SpanKind;
  attributes: Attributes;
  events: { name: string; attributes: Attributes }[];
  links: ReceivedLink[];
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

/** Calls `field` for each field of a message; `field` reads the value or returns false to skip it. */
function fields(bytes: Uint8Array, field: (no: number, reader: BinaryReader) => boolean | undefined): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    if (field(no, reader) !== true) reader.skip(wireType, no);
  }
}

// common.v1.AnyValue: a oneof of string, bool, int, double, array, kvlist, bytes.
function anyValue(bytes: Uint8Array): AttributeValue {
  let value: AttributeValue;
  fields(bytes, (no, r) => {
    switch (no) {
      case 1:
        value = r.string();
        return true;
      case 2:
        value = r.bool();
        return true;
      case 3: {
        const n = BigInt(r.int64());
        value = n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
        return true;
      }
      case 4:
        value = r.double();
        return true;
      case 5: {
        const items: AttributeValue[] = [];
        fields(r.bytes(), (n, inner) => {
          if (n !== 1) return false;
          items.push(anyValue(inner.bytes()));
          return true;
        });
        value = items;
        return true;
      }
      default:
        return false;
    }
  });
  return value;
}

// common.v1.KeyValue: key = 1, value = 2.
function keyValue(bytes: Uint8Array, into: Attributes): void {
  let key = '';
  let value: AttributeValue;
  fields(bytes, (no, r) => {
    if (no === 1) key = r.string();
    else if (no === 2) value = anyValue(r.bytes());
    else return false;
    return true;
  });
  into[key] = value;
}

function link(bytes: Uint8Array): ReceivedLink {
  const received: ReceivedLink = { traceId: '', spanId: '', attributes: {} };
  fields(bytes, (no, r) => {
    if (no === 1) received.traceId = hex(r.bytes());
    else if (no === 2) received.spanId = hex(r.bytes());
    else if (no === 4) keyValue(r.bytes(), received.attributes);
    else return false;
    return true;
  });
  return received;
}

function event(bytes: Uint8Array): { name: string; attributes: Attributes } {
  const received = { name: '', attributes: {} as Attributes };
  fields(bytes, (no, r) => {
    if (no === 2) received.name = r.string();
    else if (no === 3) keyValue(r.bytes(), received.attributes);
    else return false;
    return true;
  });
  return received;
}

// trace.v1.Span.
function span(bytes: Uint8Array, service: string): ReceivedSpan {
  const received: ReceivedSpan = {
    service,
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: SpanKind.UNSPECIFIED,
    attributes: {},
    events: [],
    links: [],
  };
  fields(bytes, (no, r) => {
    switch (no) {
      case 1:
        received.traceId = hex(r.bytes());
        return true;
      case 2:
        received.spanId = hex(r.bytes());
        return true;
      case 4:
        received.parentSpanId = hex(r.bytes());
        return true;
      case 5:
        received.name = r.string();
        return true;
      case 6:
        received.kind = r.int32();
        return true;
      case 9:
        keyValue(r.bytes(), received.attributes);
        return true;
      case 11:
        received.events.push(event(r.bytes()));
        return true;
      case 13:
        received.links.push(link(r.bytes()));
        return true;
      default:
        return false;
    }
  });
  return received;
}

/** Decodes an ExportTraceServiceRequest (collector.trace.v1) into its spans. */
export function decodeExportTraceRequest(bytes: Uint8Array): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  // resource_spans = 1
  fields(bytes, (no, r) => {
    if (no !== 1) return false;
    const resourceSpans = r.bytes();
    // ResourceSpans: resource = 1 (attributes = 1), scope_spans = 2 (spans = 2)
    const resource: Attributes = {};
    const scopeSpans: Uint8Array[] = [];
    fields(resourceSpans, (n, inner) => {
      if (n === 1) {
        fields(inner.bytes(), (m, res) => {
          if (m !== 1) return false;
          keyValue(res.bytes(), resource);
          return true;
        });
      } else if (n === 2) {
        scopeSpans.push(inner.bytes());
      } else return false;
      return true;
    });
    const service = String(resource['service.name'] ?? '');
    for (const scope of scopeSpans)
      fields(scope, (n, inner) => {
        if (n !== 2) return false;
        spans.push(span(inner.bytes(), service));
        return true;
      });
    return true;
  });
  return spans;
}

/** An OTLP/gRPC endpoint on a free loopback port, keeping every span it is sent. */
export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  #server = new Server();
  #port = 0;

  get endpoint(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  async start(): Promise<this> {
    const identity = (buffer: Buffer) => buffer;
    const definition: ServiceDefinition = {
      export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    };
    const implementation: UntypedServiceImplementation = {
      export: (call: { request: Buffer }, callback: (error: Error | null, response?: Buffer) => void) => {
        try {
          this.spans.push(...decodeExportTraceRequest(call.request));
          callback(null, Buffer.alloc(0)); // an empty ExportTraceServiceResponse: all accepted
        } catch (error) {
          callback(error as Error);
        }
      },
    };
    this.#server.addService(definition, implementation);
    this.#port = await new Promise<number>((resolve, reject) =>
      this.#server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, port) =>
        error ? reject(error) : resolve(port),
      ),
    );
    return this;
  }

  stop(): void {
    this.#server.forceShutdown();
  }

  find(predicate: (span: ReceivedSpan) => boolean): ReceivedSpan | undefined {
    return this.spans.find(predicate);
  }

  filter(predicate: (span: ReceivedSpan) => boolean): ReceivedSpan[] {
    return this.spans.filter(predicate);
  }

  /** The span with this id in this trace. */
  byId(traceId: string, spanId: string): ReceivedSpan | undefined {
    return this.spans.find((s) => s.traceId === traceId && s.spanId === spanId);
  }

  /** The span's parent, when it was received. */
  parentOf(span: ReceivedSpan): ReceivedSpan | undefined {
    return span.parentSpanId ? this.byId(span.traceId, span.parentSpanId) : undefined;
  }
}
