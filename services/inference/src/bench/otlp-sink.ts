import { Server, ServerCredentials } from '@grpc/grpc-js';

/**
 * An OTLP/gRPC collector (the SDK's exporter speaks gRPC) that counts a traced server's
 * exports and drops them unread, so that the traced server pays for building and sending its
 * spans and nothing else is measured.
 */
export async function otlpSink() {
  let exports = 0;
  const bytes = (b: Buffer) => b;
  const server = new Server();
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestSerialize: bytes,
        requestDeserialize: bytes,
        responseSerialize: bytes,
        responseDeserialize: bytes,
      },
    },
    {
      // An empty ExportTraceServiceResponse: zero bytes.
      Export: (_call: unknown, callback: (e: null, r: Buffer) => void) => {
        exports++;
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, exports: () => exports, close: () => server.forceShutdown() };
}

/** The environment that turns tracing on in a server process: 100% sampling, batch span processor, export to `sinkPort`. */
export function tracingEnv(sinkPort: number): Record<string, string> {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sinkPort}`,
    OTEL_TRACES_SAMPLER: 'always_on',
    OTEL_SERVICE_NAME: 'ballast-inference-bench',
  };
}
