import type { Row } from '@ballast/contracts/ballast/inference/v1/inference_pb.js';
import { BallastError, invalidArgument } from '@ballast/grpc-kit';
import type { InputLayout } from './batcher.js';
import type { NumericArray } from './executor.js';
import type { LoadedVersion } from './model-pool.js';
import type { InputLimits } from './serving-config.js';

/** A request's rows as one array per model input (signature order), ready for the batcher. */
export interface ModelInputs {
  rows: number;
  inputs: NumericArray[];
}

/** Refuses NaN and ±Inf (unless the model allows them) and, for int32 inputs, non-integers. */
export function checkValues(
  data: NumericArray | readonly number[],
  input: InputLayout,
  field: string,
  allowNonFinite: boolean,
): void {
  for (let i = 0; i < data.length; i++) {
    const value = data[i] as number;
    if (!allowNonFinite && !Number.isFinite(value)) {
      throw invalidArgument(
        `${field}[${i}]`,
        `must be finite (got ${value}); model input "${input.name}" forbids NaN and Inf`,
      );
    }
  }
}

/**
 * The refusal of a request of more rows than the model's row cap: RESOURCE_EXHAUSTED naming
 * the field and the rule (requests up to the cap are split into batches, however large).
 */
export function rowCapExceeded(field: string, rows: number, cap: number): BallastError {
  const rule = `at most ${cap} rows per request (max_rows_per_request), got ${rows}`;
  return new BallastError('resource_exhausted', `${field}: ${rule}`, field, rule);
}

function allocate(input: InputLayout, rows: number): NumericArray {
  return input.dtype === 'int32'
    ? new Int32Array(rows * input.rowSize)
    : new Float32Array(rows * input.rowSize);
}

function describeInputs(version: LoadedVersion): string {
  return version.layout
    .map((input) => {
      const columns = version.featureNames.get(input.name);
      return columns
        ? `${input.name} (features ${columns.join(', ')})`
        : `${input.name} (${input.rowSize} value${input.rowSize === 1 ? '' : 's'} per row)`;
    })
    .join('; ');
}

/**
 * Turns Predict rows into model inputs. Each model input is fed, per row, from
 * `inputs[name]` (its row's values, flattened), else from the named features its columns
 * declare, else (one value per row) from the feature of its own name. Every mismatch is an
 * INVALID_ARGUMENT naming the field.
 */
export function rowsToInputs(rows: readonly Row[], version: LoadedVersion, limits: InputLimits): ModelInputs {
  const count = rows.length;
  if (count > limits.maxRowsPerRequest) throw rowCapExceeded('rows', count, limits.maxRowsPerRequest);
  const { allowNonFinite } = limits;
  const inputs = version.layout.map((input) => allocate(input, count));
  const known = new Set<string>();
  for (const input of version.layout) {
    for (const column of version.featureNames.get(input.name) ?? (input.rowSize === 1 ? [input.name] : [])) {
      known.add(column);
    }
  }
  const inputNames = new Set(version.layout.map((i) => i.name));
  for (let r = 0; r < count; r++) {
    const row = rows[r] as Row;
    for (const name of Object.keys(row.inputs)) {
      if (!inputNames.has(name)) {
        throw invalidArgument(
          `rows[${r}].inputs.${name}`,
          `unknown input; the model takes: ${describeInputs(version)}`,
        );
      }
    }
    for (const name of Object.keys(row.features)) {
      if (!known.has(name)) {
        throw invalidArgument(
          `rows[${r}].features.${name}`,
          `unknown feature; the model takes: ${describeInputs(version)}`,
        );
      }
    }
    version.layout.forEach((input, index) => {
      const target = inputs[index] as NumericArray;
      const offset = r * input.rowSize;
      const whole = Object.hasOwn(row.inputs, input.name) ? row.inputs[input.name] : undefined;
      if (whole) {
        if (whole.values.length !== input.rowSize) {
          throw invalidArgument(
            `rows[${r}].inputs.${input.name}`,
            `must have ${input.rowSize} values (row shape [${input.rowShape.join(', ')}]), got ${whole.values.length}`,
          );
        }
        checkValues(whole.values, input, `rows[${r}].inputs.${input.name}`, allowNonFinite);
        target.set(whole.values, offset);
        return;
      }
      const columns =
        version.featureNames.get(input.name) ?? (input.rowSize === 1 ? [input.name] : undefined);
      if (!columns) {
        throw invalidArgument(
          `rows[${r}].inputs.${input.name}`,
          `missing: model input "${input.name}" takes ${input.rowSize} values per row and names no columns`,
        );
      }
      for (let c = 0; c < columns.length; c++) {
        const column = columns[c] as string;
        const value = Object.hasOwn(row.features, column) ? row.features[column] : undefined;
        if (value === undefined) {
          throw invalidArgument(
            `rows[${r}].features.${column}`,
            `missing; the model takes: ${describeInputs(version)}`,
          );
        }
        if (!allowNonFinite && !Number.isFinite(value)) {
          throw invalidArgument(`rows[${r}].features.${column}`, `must be finite (got ${value})`);
        }
        target[offset + c] = value;
      }
    });
  }
  return { rows: count, inputs };
}
