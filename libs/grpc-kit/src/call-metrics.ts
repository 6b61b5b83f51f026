import { type CounterSeries, type HistogramSeries, localMetrics } from '@ballast/telemetry';
import type { DescMethod } from '@bufbuild/protobuf';
import { status } from '@grpc/grpc-js';

interface MethodSeries {
  handling: HistogramSeries;
  handled: Map<number, CounterSeries>;
}

/**
 * Counts calls and times them per method and status, with the names operators know from
 * go-grpc-prometheus (grpc_server_handled_total, grpc_server_handling_seconds). The adapter
 * records each call as it answers it, rather than an interceptor around it (two promises and
 * their turns less per call); the instruments are local (@ballast/telemetry's localMetrics): a
 * call finds its series by its method's descriptor and hashes no attributes.
 */
export class CallMetrics {
  readonly #handled = localMetrics().counter('grpc_server_handled_total', {
    scope: '@ballast/grpc-kit',
    description: 'RPCs completed on the server, by method and status code.',
  });
  readonly #handling = localMetrics().histogram('grpc_server_handling_seconds', {
    scope: '@ballast/grpc-kit',
    description: 'Time from receiving an RPC to sending its status.',
    unit: 's',
    boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  readonly #byMethod = new Map<DescMethod, MethodSeries>();

  /** One call of `method` answered with `code`, started at `startedMs` (performance.now()). */
  record(method: DescMethod, code: status, startedMs: number): void {
    let series = this.#byMethod.get(method);
    if (!series) {
      series = { handling: this.#handling.series(attributesOf(method)), handled: new Map() };
      this.#byMethod.set(method, series);
    }
    let count = series.handled.get(code);
    if (!count) {
      count = this.#handled.series({ ...attributesOf(method), grpc_code: status[code] ?? 'UNKNOWN' });
      series.handled.set(code, count);
    }
    count.add(1);
    series.handling.record((performance.now() - startedMs) / 1000);
  }
}

function attributesOf(method: DescMethod) {
  return { grpc_service: method.parent.typeName, grpc_method: method.name, grpc_type: method.methodKind };
}
