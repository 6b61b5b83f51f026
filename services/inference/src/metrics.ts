import { type CounterSeries, getMeter, type HistogramSeries, localMetrics } from '@ballast/telemetry';

const latencyBuckets = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/**
 * The inference service's instruments, as they appear on /metrics. Those recorded per request
 * or per batch are local instruments (@ballast/telemetry's localMetrics): each model version
 * takes its series once, at load (versionSeries), and a request adds to them in place.
 */
export function inferenceMetrics() {
  const meter = getMeter('@ballast/inference');
  const local = localMetrics();
  const scope = '@ballast/inference';
  return {
    requests: local.counter('ballast_inference_requests_total', {
      scope,
      description: 'Prediction requests answered, by model, version, API and status.',
    }),
    duration: local.histogram('ballast_inference_request_duration_seconds', {
      scope,
      description: 'From receiving a prediction request to answering it, by model, version and status.',
      unit: 's',
      boundaries: latencyBuckets,
    }),
    batchSize: local.histogram('ballast_inference_batch_size', {
      scope,
      description: 'Rows per executed batch.',
      boundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    }),
    queueWait: local.histogram('ballast_inference_queue_wait_seconds', {
      scope,
      description: 'Time a request waited in the batcher before its batch ran.',
      unit: 's',
      boundaries: latencyBuckets,
    }),
    execution: local.histogram('ballast_inference_execution_seconds', {
      scope,
      description: 'Model execution time of one batch on the worker.',
      unit: 's',
      boundaries: latencyBuckets,
    }),
    queueDepth: meter.createObservableGauge('ballast_inference_queue_depth', {
      description: 'Rows waiting in the batcher, by model and version.',
    }),
    shed: meter.createCounter('ballast_inference_shed_total', {
      description: 'Requests refused at admission or dropped before running, by reason.',
    }),
    loadSeconds: meter.createHistogram('ballast_inference_model_load_seconds', {
      description: 'Download, load and warm-up of one model version, by result.',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60] },
    }),
    loadFailures: meter.createCounter('ballast_inference_model_load_failures_total', {
      description: 'Model versions refused at load (corrupt or incompatible artifacts).',
    }),
    backend: meter.createObservableGauge('ballast_inference_backend_info', {
      description: 'The TensorFlow.js backend that runs the models (value 1).',
    }),
    logDropped: meter.createCounter('ballast_inference_prediction_log_dropped_total', {
      description: 'Prediction log records dropped (buffer full or Redis unavailable).',
    }),
    logged: meter.createCounter('ballast_inference_prediction_log_records_total', {
      description: 'Prediction log records enqueued to monitor.predictions.',
    }),
  };
}

export type InferenceMetrics = ReturnType<typeof inferenceMetrics>;

export interface RequestSeries {
  requests: CounterSeries;
  duration: HistogramSeries;
}

/** A loaded model version's series: its batches', and its requests' by API and status. */
export interface VersionSeries {
  batchSize: HistogramSeries;
  execution: HistogramSeries;
  queueWait: HistogramSeries;
  request(api: string, status: string): RequestSeries;
}

export function versionSeries(metrics: InferenceMetrics, model: string, version: number): VersionSeries {
  const labels = { model, version: String(version) };
  const byApi = new Map<string, Map<string, RequestSeries>>();
  return {
    batchSize: metrics.batchSize.series(labels),
    execution: metrics.execution.series(labels),
    queueWait: metrics.queueWait.series(labels),
    request(api, status) {
      let byStatus = byApi.get(api);
      if (!byStatus) {
        byStatus = new Map();
        byApi.set(api, byStatus);
      }
      let series = byStatus.get(status);
      if (!series) {
        series = requestSeries(metrics, { ...labels, api, status });
        byStatus.set(status, series);
      }
      return series;
    },
  };
}

/** The request series for these labels (model, version, api, status, in that order). */
export function requestSeries(metrics: InferenceMetrics, labels: Record<string, string>): RequestSeries {
  return { requests: metrics.requests.series(labels), duration: metrics.duration.series(labels) };
}
