import { getMeter } from '@ballast/telemetry';

const latencyBuckets = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The inference service's instruments, as they appear on /metrics. */
export function inferenceMetrics() {
  const meter = getMeter('@ballast/inference');
  return {
    requests: meter.createCounter('ballast_inference_requests_total', {
      description: 'Prediction requests answered, by model, version, API and status.',
    }),
    duration: meter.createHistogram('ballast_inference_request_duration_seconds', {
      description: 'From receiving a prediction request to answering it, by model, version and status.',
      unit: 's',
      advice: { explicitBucketBoundaries: latencyBuckets },
    }),
    batchSize: meter.createHistogram('ballast_inference_batch_size', {
      description: 'Rows per executed batch.',
      advice: { explicitBucketBoundaries: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] },
    }),
    queueWait: meter.createHistogram('ballast_inference_queue_wait_seconds', {
      description: 'Time a request waited in the batcher before its batch ran.',
      unit: 's',
      advice: { explicitBucketBoundaries: latencyBuckets },
    }),
    execution: meter.createHistogram('ballast_inference_execution_seconds', {
      description: 'Model execution time of one batch on the worker.',
      unit: 's',
      advice: { explicitBucketBoundaries: latencyBuckets },
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
