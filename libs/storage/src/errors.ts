/**
 * The `code` strings are the ones the gRPC kit maps to statuses (it reads `code`, `field`
 * and `rule` by shape), so storage errors reach clients as the right status without this
 * package depending on gRPC.
 */
export type StorageErrorCode =
  | 'invalid_argument'
  | 'not_found'
  | 'resource_exhausted'
  | 'failed_precondition'
  | 'unavailable';

export class StorageError extends Error {
  override name = 'StorageError';
  constructor(
    readonly code: StorageErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class InvalidArgumentError extends StorageError {
  override name = 'InvalidArgumentError';
  constructor(
    message: string,
    /** The offending input, e.g. `schema` or `sha256`; callers may rethrow with their own field path. */
    readonly field?: string,
    /** The rule it broke, e.g. `must be 64 lowercase hex characters`. */
    readonly rule?: string,
  ) {
    super('invalid_argument', message);
  }
}

export class InvalidDigestError extends InvalidArgumentError {
  override name = 'InvalidDigestError';
  constructor(
    readonly value: string,
    field = 'sha256',
  ) {
    super(
      `${field}: must be 64 lowercase hex characters, got ${JSON.stringify(value.slice(0, 80))}`,
      field,
      'must be 64 lowercase hex characters',
    );
  }
}

export class DigestMismatchError extends InvalidArgumentError {
  override name = 'DigestMismatchError';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `content digest mismatch: expected sha256 ${expected}, got ${actual}`,
      'expectedSha256',
      'must equal the sha256 of the content',
    );
  }
}

export class BlobNotFoundError extends StorageError {
  override name = 'BlobNotFoundError';
  constructor(readonly sha256: string) {
    super('not_found', `blob sha256:${sha256} not found`);
  }
}

export class BlobTooLargeError extends StorageError {
  override name = 'BlobTooLargeError';
  constructor(readonly maxBytes: number) {
    super('resource_exhausted', `blob exceeds the size limit of ${maxBytes} bytes`);
  }
}

export class MigrationError extends StorageError {
  override name = 'MigrationError';
  constructor(
    message: string,
    /** The migration at fault, when there is one. */
    readonly migrationId?: string,
    options?: ErrorOptions,
  ) {
    super('failed_precondition', message, options);
  }
}

/** The database cannot be reached right now; the caller may retry. */
export class StorageUnavailableError extends StorageError {
  override name = 'StorageUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('unavailable', message, options);
  }
}

/** The SQLSTATE of a database error from either backend (both expose it as `code`). */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  // SQLSTATE classes start with a digit or F/H/P/X, which keeps Node's EPIPE/EPERM out.
  return typeof code === 'string' && /^[0-9FHPX][0-9A-Z]{4}$/.test(code) ? code : undefined;
}

export function isUniqueViolation(err: unknown): boolean {
  return sqlState(err) === '23505';
}
