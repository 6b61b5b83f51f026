/**
 * An artifact (or one of its paths) breaks a rule. `field` and `rule` map onto the
 * `ballast-field` / `ballast-rule` trailers of an INVALID_ARGUMENT status.
 */
export class ArtifactError extends Error {
  override readonly name: string = 'ArtifactError';

  constructor(
    readonly field: string,
    readonly rule: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}
