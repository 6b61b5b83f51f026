import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ModelSpec } from '@ballast/queue';
import type { ErrorObject } from 'ajv';
import { LineCounter, parseDocument, stringify } from 'yaml';

/**
 * Reading and writing `ballast.yaml` (or .json): parsed with its positions kept, checked
 * against the published JSON Schema (libs/sdk/schema/ballast.schema.json), and every problem
 * reported as `file:line:column: path: what is wrong`, all at once.
 */
export interface ScheduleEntry {
  model: string;
  cron: string;
  featureView?: string;
  promote?: boolean;
  spec?: ModelSpec;
}

/** A file's contents after validation: each entry is protobuf JSON with short enum names. */
export interface BallastFile {
  datasets?: Record<string, unknown>[];
  featureViews?: Record<string, unknown>[];
  models?: Record<string, unknown>[];
  schedules?: ScheduleEntry[];
}

export class BallastFileError extends Error {}

const require = createRequire(import.meta.url);
export const SCHEMA_PATH = require.resolve('../schema/ballast.schema.json');

type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null };
let validator: Validator | undefined;

async function validate(): Promise<Validator> {
  if (!validator) {
    // Ajv's 2020-12 entry ships as CommonJS: its default export is the class itself.
    const { default: Ajv2020 } = (await import('ajv/dist/2020.js')) as unknown as {
      default: new (o: object) => { compile(s: unknown): Validator };
    };
    validator = new Ajv2020({ allErrors: true, strict: false, verbose: true }).compile(
      JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')),
    );
  }
  return validator;
}

/** `additionalProperties` names the extra key, so the message can too. */
function describe(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties')
    return `unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  if (e.keyword === 'required')
    return `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
  if (e.keyword === 'pattern' && e.parentSchema && typeof e.parentSchema.description === 'string')
    return `must be ${e.parentSchema.description}`;
  return e.message ?? e.keyword;
}

/** Parses and validates `text` (YAML or JSON; JSON is YAML); throws every problem at once. */
export async function parseBallastFile(text: string, file: string): Promise<BallastFile> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, keepSourceTokens: true });
  const at = (offset: number) => {
    const { line, col } = lines.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0)
    throw new BallastFileError(
      doc.errors.map((e) => `${at(e.pos[0])}: ${e.message.split('\n')[0]}`).join('\n'),
    );
  const data = (doc.toJS() ?? {}) as unknown;
  const check = await validate();
  if (!check(data)) {
    // `allOf` repeats a nested problem once per branch: each message once.
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const e of check.errors ?? []) {
      if (e.keyword === 'allOf') continue;
      const path: (string | number)[] = e.instancePath
        .split('/')
        .slice(1)
        .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
      // An unknown key is shown where it is, not where its object starts.
      if (e.keyword === 'additionalProperties')
        path.push((e.params as { additionalProperty: string }).additionalProperty);
      const node = doc.getIn(path, true) as { range?: [number, number] } | undefined;
      const where = node?.range ? at(node.range[0]) : file;
      const line = `${where}: ${e.instancePath || '(top level)'}: ${describe(e)}`;
      if (!seen.has(line)) problems.push(line);
      seen.add(line);
    }
    throw new BallastFileError(problems.join('\n'));
  }
  return data as BallastFile;
}

export async function readBallastFile(path: string): Promise<BallastFile> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new BallastFileError(`${path}: ${(err as Error).message}`);
  }
  return parseBallastFile(text, path);
}

/** The file as YAML, keys in the order the schema lists them, empty sections left out. */
export function writeBallastFile(file: BallastFile, header = ''): string {
  const ordered: BallastFile = {};
  if (file.datasets?.length) ordered.datasets = file.datasets;
  if (file.featureViews?.length) ordered.featureViews = file.featureViews;
  if (file.models?.length) ordered.models = file.models;
  if (file.schedules?.length) ordered.schedules = file.schedules;
  const body = stringify(ordered, { lineWidth: 0 });
  return `# yaml-language-server: $schema=https://ballast.dev/schema/ballast.schema.json\n${header}${body}`;
}
