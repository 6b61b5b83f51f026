import type {
  GetDriftRequest,
  GetErrorRequest,
  RecordActualsRequest,
  SetBaselineRequest,
} from '@ballast/contracts/ballast/monitor/v1/monitor_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import { type Timestamp, timestampMs } from '@bufbuild/protobuf/wkt';
import type { BaselineInput } from './baselines.js';
import type { DriftQuery } from './drift-windows.js';
import type { ErrorQuery } from './error-windows.js';
import type { ActualRow } from './store/actuals.js';

/**
 * Requests checked and turned into the domain modules' arguments, so every RPC handler in
 * server.ts is one call: what can be refused from the request alone is refused here.
 */

const MAX_ACTUALS = 10_000;

function name(field: string, value: string): string {
  const v = value.trim();
  if (!v) throw invalidArgument(field, 'must not be empty');
  if (v.length > 256) throw invalidArgument(field, 'must be at most 256 characters');
  return v;
}

function versionOf(field: string, value: number, allowZero = false): number {
  if (!Number.isInteger(value) || value < (allowZero ? 0 : 1))
    throw invalidArgument(field, allowZero ? 'must be >= 0' : 'must be >= 1');
  return value;
}

const ms = (t: Timestamp | undefined) => (t ? timestampMs(t) : undefined);

export function baselineInput(req: SetBaselineRequest): BaselineInput {
  return {
    model: name('model', req.model),
    version: versionOf('version', req.version),
    statistics: req.statistics,
    config: req.config,
    samples: req.samples,
  };
}

export function driftQuery(req: GetDriftRequest): DriftQuery {
  const model = name('model', req.model);
  const version = versionOf('version', req.version, true);
  const start = ms(req.startTime);
  const end = ms(req.endTime);
  if (start !== undefined && end !== undefined && end <= start)
    throw invalidArgument('end_time', 'must be after start_time');
  return { model, version, start, end, segment: req.allSegments ? undefined : req.segment };
}

/** The model and its actuals; an actual without a time is taken as of now. */
export function actualsInput(req: RecordActualsRequest, now = Date.now()): [string, ActualRow[]] {
  const model = name('model', req.model);
  if (req.actuals.length > MAX_ACTUALS) throw invalidArgument('actuals', `at most ${MAX_ACTUALS} per call`);
  const rows = req.actuals.map((a, i) => {
    if (!a.entityKey) throw invalidArgument(`actuals[${i}].entity_key`, 'must not be empty');
    if (a.entityKey.length > 512)
      throw invalidArgument(`actuals[${i}].entity_key`, 'must be at most 512 characters');
    if (!Number.isFinite(a.value)) throw invalidArgument(`actuals[${i}].value`, 'must be a finite number');
    return { entityKey: a.entityKey, time: a.time ? timestampMs(a.time) : now, value: a.value };
  });
  return [model, rows];
}

export function errorQuery(req: GetErrorRequest): ErrorQuery {
  return {
    model: name('model', req.model),
    version: versionOf('version', req.version, true),
    start: ms(req.startTime),
    end: ms(req.endTime),
    segment: req.allSegments ? undefined : req.segment,
    mergeWindows: req.mergeWindows,
  };
}
