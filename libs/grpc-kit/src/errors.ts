import { randomUUID } from 'node:crypto';
import { Metadata, status } from '@grpc/grpc-js';

/**
 * The error vocabulary shared by every service. Domain code throws these (or any error
 * carrying one of these `code` strings, so libraries need not depend on gRPC) and the kit
 * turns them into the matching gRPC status.
 */
export const errorCodes = {
  cancelled: status.CANCELLED,
  invalid_argument: status.INVALID_ARGUMENT,
  deadline_exceeded: status.DEADLINE_EXCEEDED,
  not_found: status.NOT_FOUND,
  already_exists: status.ALREADY_EXISTS,
  permission_denied: status.PERMISSION_DENIED,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  failed_precondition: status.FAILED_PRECONDITION,
  aborted: status.ABORTED,
  out_of_range: status.OUT_OF_RANGE,
  unimplemented: status.UNIMPLEMENTED,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
} as const;

export type ErrorCode = keyof typeof errorCodes;

/** Trailer keys that carry the structured part of an INVALID_ARGUMENT to clients. */
export const FIELD_TRAILER = 'ballast-field';
export const RULE_TRAILER = 'ballast-rule';

export class BallastError extends Error {
  override name = 'BallastError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For invalid_argument: the path of the offending field, e.g. `records[3].price`. */
    readonly field?: string,
    /** For invalid_argument: the rule it broke, e.g. `must be >= 0`. */
    readonly rule?: string,
  ) {
    super(message);
  }
}

export function invalidArgument(field: string, rule: string): BallastError {
  return new BallastError('invalid_argument', `${field}: ${rule}`, field, rule);
}

export function notFound(message: string): BallastError {
  return new BallastError('not_found', message);
}

export function failedPrecondition(message: string): BallastError {
  return new BallastError('failed_precondition', message);
}

export function unavailable(message: string): BallastError {
  return new BallastError('unavailable', message);
}

export interface StatusObject {
  code: status;
  details: string;
  metadata: Metadata;
}

interface CodedError {
  code: ErrorCode;
  message: string;
  field?: unknown;
  rule?: unknown;
}

function isCodedError(err: unknown): err is CodedError {
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    Object.hasOwn(errorCodes, (err as unknown as { code: string }).code)
  );
}

function isGrpcStatusError(err: unknown): err is Error & { code: status; details?: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'number' && code > 0 && code <= status.UNAUTHENTICATED;
}

const MAX_TRAILER_CHARS = 1024;

/**
 * A text trailer value as HTTP/2 allows it (printable ASCII; grpc-js throws on anything
 * else): other characters are escaped as \u{...}, and long values are cut. Rules quote the
 * caller's input, which may be any Unicode.
 */
export function trailerValue(text: string): string {
  const escaped = text.replace(/[^\x20-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)?.toString(16)}}`);
  return escaped.length > MAX_TRAILER_CHARS ? `${escaped.slice(0, MAX_TRAILER_CHARS)}...` : escaped;
}

/**
 * A database "data exception" (SQLSTATE class 22: a NUL in text, invalid encoding, a
 * number out of range...): a value from the request that the database cannot store or
 * compare, so the caller's fault, not a bug. Same codes from Postgres and PGlite.
 */
function isDataException(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && /^22[0-9A-Z]{3}$/.test(code);
}

export interface InternalErrorSink {
  error(obj: object, msg?: string): void;
}

/**
 * Maps anything a handler threw to the status a client sees. Known errors keep their
 * message; anything else is a bug: the client gets INTERNAL and a reference, the stack
 * goes to the log only, so internals never leak over the wire.
 */
export function toStatus(err: unknown, log?: InternalErrorSink, method?: string): StatusObject {
  const metadata = new Metadata();
  if (isCodedError(err)) {
    if (typeof err.field === 'string') metadata.set(FIELD_TRAILER, trailerValue(err.field));
    if (typeof err.rule === 'string') metadata.set(RULE_TRAILER, trailerValue(err.rule));
    return { code: errorCodes[err.code], details: err.message, metadata };
  }
  if (isDataException(err)) {
    return {
      code: status.INVALID_ARGUMENT,
      details: `the database refused a value: ${err.message}`,
      metadata,
    };
  }
  // A status error from a downstream gRPC call: UNAVAILABLE and DEADLINE_EXCEEDED keep
  // their meaning (retry is safe), anything else from a dependency is our own failure.
  if (isGrpcStatusError(err)) {
    const passThrough = err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED;
    if (passThrough) return { code: err.code, details: err.details ?? err.message, metadata };
  }
  const ref = randomUUID();
  log?.error({ err, ref, method }, 'unhandled error in RPC handler');
  return { code: status.INTERNAL, details: `internal error (ref ${ref})`, metadata };
}
