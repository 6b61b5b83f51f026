import { endianness } from 'node:os';
import type {
  InferTensorContents,
  ModelInferRequest,
  ModelInferResponse_InferOutputTensor,
  ModelInferResponse_InferOutputTensorSchema,
  ModelInferResponseSchema,
} from '@ballast/contracts/inference/grpc_predict_v2_pb.js';
import { invalidArgument } from '@ballast/grpc-kit';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { InputLayout } from './batcher.js';
import type { NumericArray, OutputData } from './executor.js';
import type { InferAnswer } from './infer-wire.js';
import { checkValues, type ModelInputs, rowCapExceeded } from './inputs.js';
import type { LoadedVersion } from './model-pool.js';
import type { InputLimits } from './serving-config.js';

/** Open Inference Protocol datatypes of the tfjs dtypes, and their sizes in raw form. */
const DATATYPES: Record<string, string> = { float32: 'FP32', int32: 'INT32', bool: 'BOOL', string: 'BYTES' };
const SIZES: Record<string, number> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  BF16: 2,
  FP32: 4,
  FP64: 8,
};
const CONTENT_FIELDS = [
  'boolContents',
  'intContents',
  'int64Contents',
  'uintContents',
  'uint64Contents',
  'fp32Contents',
  'fp64Contents',
  'bytesContents',
] as const satisfies readonly (keyof InferTensorContents)[];

if (endianness() !== 'LE') throw new Error('raw tensor contents assume a little-endian host');

export function oipDatatype(dtype: string | null): string {
  return DATATYPES[dtype ?? 'float32'] ?? dtype?.toUpperCase() ?? 'FP32';
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/**
 * Little-endian bytes as a typed array: a view of the received message where its offset is
 * aligned (the batcher copies it once, into the batch's buffer), else an aligned copy.
 */
function fromRaw(bytes: Uint8Array, dtype: 'float32' | 'int32'): NumericArray {
  const Type = dtype === 'int32' ? Int32Array : Float32Array;
  if (bytes.byteOffset % 4 === 0)
    return new Type(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength / 4);
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return new Type(copy.buffer);
}

/**
 * Checks a ModelInferRequest against the model and decodes its tensors: every model input
 * exactly once, its datatype, its shape ([batch, ...the model's row shape]), its element
 * count (typed) or byte length (raw), and finite values. Mismatches are INVALID_ARGUMENT
 * naming the field and the expectation.
 */
export function inferInputs(
  request: ModelInferRequest,
  version: LoadedVersion,
  limits: InputLimits,
): ModelInputs {
  const { allowNonFinite } = limits;
  const raw = request.rawInputContents;
  if (request.inputs.length === 0) throw invalidArgument('inputs', 'at least one input tensor is required');
  if (raw.length > 0 && raw.length !== request.inputs.length) {
    throw invalidArgument(
      'raw_input_contents',
      `must have one entry per input (${request.inputs.length}), got ${raw.length}`,
    );
  }
  const byName = new Map<string, { index: number; layout: InputLayout; position: number }>();
  version.layout.forEach((layout, position) => {
    byName.set(layout.name, { index: -1, layout, position });
  });
  const expected = version.layout.map((l) => l.name).join(', ');
  request.inputs.forEach((tensor, index) => {
    const slot = byName.get(tensor.name);
    if (!slot)
      throw invalidArgument(
        `inputs[${index}].name`,
        `unknown input "${tensor.name}"; the model takes: ${expected}`,
      );
    if (slot.index >= 0)
      throw invalidArgument(`inputs[${index}].name`, `input "${tensor.name}" is given twice`);
    slot.index = index;
  });
  let batch: number | undefined;
  const inputs: NumericArray[] = new Array(version.layout.length);
  for (const [name, slot] of byName) {
    if (slot.index < 0)
      throw invalidArgument('inputs', `missing input "${name}"; the model takes: ${expected}`);
    const tensor = request.inputs[slot.index] as ModelInferRequest['inputs'][number];
    const field = `inputs[${slot.index}]`;
    const { layout } = slot;
    const want = oipDatatype(layout.dtype);
    if (tensor.datatype !== want) {
      throw invalidArgument(`${field}.datatype`, `input "${name}" is ${want}, got "${tensor.datatype}"`);
    }
    const shape = tensor.shape.map(Number);
    const wantShape = `[-1, ${layout.rowShape.join(', ')}]`.replace(', ]', ']');
    if (
      shape.length !== layout.rowShape.length + 1 ||
      shape.some((d) => !Number.isSafeInteger(d) || d < 0) ||
      layout.rowShape.some((d, i) => shape[i + 1] !== d)
    ) {
      throw invalidArgument(
        `${field}.shape`,
        `input "${name}" must have shape ${wantShape}, got [${shape.join(', ')}]`,
      );
    }
    const rows = shape[0] as number;
    if (rows === 0)
      throw invalidArgument(`${field}.shape`, 'the batch dimension must be at least 1 (empty request)');
    if (batch !== undefined && rows !== batch) {
      throw invalidArgument(
        `${field}.shape`,
        `batch dimension ${rows} differs from the other inputs' ${batch}`,
      );
    }
    batch = rows;
    if (rows > limits.maxRowsPerRequest)
      throw rowCapExceeded(`${field}.shape`, rows, limits.maxRowsPerRequest);
    const elements = product(shape);
    let data: NumericArray;
    const contents = tensor.contents;
    const populated = contents ? CONTENT_FIELDS.filter((f) => contents[f].length > 0) : [];
    if (raw.length > 0) {
      if (populated.length > 0) {
        throw invalidArgument(`${field}.contents`, 'typed contents and raw_input_contents cannot be mixed');
      }
      const bytes = raw[slot.index] as Uint8Array;
      const size = SIZES[want] ?? 4;
      if (bytes.byteLength !== elements * size) {
        throw invalidArgument(
          `raw_input_contents[${slot.index}]`,
          `has ${bytes.byteLength} bytes; shape [${shape.join(', ')}] of ${want} needs ${elements} x ${size} = ${elements * size}`,
        );
      }
      data = fromRaw(bytes, layout.dtype);
    } else {
      const fieldName = layout.dtype === 'int32' ? 'intContents' : 'fp32Contents';
      const protoName = layout.dtype === 'int32' ? 'int_contents' : 'fp32_contents';
      const other = populated.find((f) => f !== fieldName);
      if (other) {
        throw invalidArgument(
          `${field}.contents`,
          `a ${want} input carries its data in ${protoName}, not ${other}`,
        );
      }
      const values = contents?.[fieldName] ?? [];
      if (values.length !== elements) {
        throw invalidArgument(
          `${field}.contents.${protoName}`,
          `has ${values.length} values; shape [${shape.join(', ')}] needs ${elements}`,
        );
      }
      data =
        layout.dtype === 'int32'
          ? Int32Array.from(values as number[])
          : Float32Array.from(values as number[]);
    }
    if (layout.dtype === 'float32')
      checkValues(
        data,
        layout,
        raw.length > 0 ? `raw_input_contents[${slot.index}]` : `${field}.contents.fp32_contents`,
        allowNonFinite,
      );
    inputs[slot.position] = data;
  }
  return { rows: batch ?? 0, inputs };
}

type OutputInit = MessageInitShape<typeof ModelInferResponse_InferOutputTensorSchema>;

/** The outputs a ModelInfer answers: those it names (all when none are named), with their OIP datatypes. */
export function answeredOutputs(request: ModelInferRequest, outputs: OutputData[]): InferAnswer['outputs'] {
  const wanted =
    request.outputs.length === 0
      ? outputs
      : request.outputs.map((requested, index) => {
          const found = outputs.find((o) => o.name === requested.name);
          if (!found) {
            throw invalidArgument(
              `outputs[${index}].name`,
              `unknown output "${requested.name}"; the model returns: ${outputs.map((o) => o.name).join(', ')}`,
            );
          }
          return found;
        });
  return wanted.map((output) => ({ ...output, datatype: oipDatatype(output.dtype) }));
}

/** The ModelInferResponse as a protobuf-es init (ModelStreamInfer's answers): typed or raw like the request. */
export function inferResponseInit(answer: InferAnswer): MessageInitShape<typeof ModelInferResponseSchema> {
  const outputs: OutputInit[] = answer.outputs.map((output) => {
    const tensor: OutputInit = {
      name: output.name,
      datatype: output.datatype,
      shape: output.shape.map(BigInt),
    };
    if (!answer.raw) {
      tensor.contents =
        output.data instanceof Int32Array
          ? { intContents: Array.from(output.data) }
          : { fp32Contents: Array.from(output.data) };
    }
    return tensor;
  });
  const rawOutputContents = answer.raw
    ? answer.outputs.map((o) => new Uint8Array(o.data.buffer, o.data.byteOffset, o.data.byteLength))
    : [];
  return {
    modelName: answer.modelName,
    modelVersion: answer.modelVersion,
    id: answer.id,
    outputs,
    rawOutputContents,
  };
}

export type { ModelInferResponse_InferOutputTensor };
