// Kubernetes objects checked against the Kubernetes OpenAPI schemas, offline.
//
// Schemas: the npm package kubernetes-models (4.5.x, generated from Kubernetes 1.27's OpenAPI
// spec) ships one JSON-schema validator per API type, compiled ahead of time by ajv; a model's
// validate() runs it. Those schemas, like the API's own, do not forbid unknown fields, so a
// misspelt field (`readinesProbe`) would pass; strictFieldProblems closes that gap with the same
// package's TypeScript interfaces: each object becomes a typed object literal, and tsc's
// excess-property check reports every field the API type does not have.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import ts from 'typescript';
import type { K8sObject } from './kustomize.js';
import { DEPLOY_DIR } from './paths.js';

const require = createRequire(import.meta.url);

/** `apps/v1` -> `apps/v1`; `v1` (the core group) -> `v1`. */
function modelPath(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** Every schema error of one object (empty when it is valid), each prefixed with Kind/name. */
export function schemaProblems(object: unknown): string[] {
  const o = object as Partial<K8sObject>;
  const id = `${o?.kind ?? '?'}/${o?.metadata?.name ?? '?'}`;
  if (typeof o?.apiVersion !== 'string' || typeof o.kind !== 'string')
    return [`${id}: apiVersion and kind are required`];
  let Class: ModelClass | undefined;
  try {
    Class = (require(modelPath(o.apiVersion, o.kind)) as Record<string, ModelClass>)[o.kind];
  } catch {
    Class = undefined;
  }
  if (!Class) return [`${id}: unknown type ${o.apiVersion} ${o.kind} (no schema in kubernetes-models)`];
  try {
    new Class(structuredClone(object)).validate();
    return [];
  } catch (error) {
    const details = (error as { errors?: Array<{ instancePath?: string; message?: string }> }).errors;
    if (details?.length)
      return details.map((e) => `${id}: ${e.instancePath || '/'} ${e.message ?? ''}`.trim());
    return [`${id}: ${(error as Error).message}`];
  }
}

/**
 * Fields that the object's API type does not have (unknown or misspelt), found by type-checking
 * the objects as literals of kubernetes-models' interfaces. One tsc program for all objects.
 */
export function strictFieldProblems(objects: readonly unknown[]): string[] {
  const lines: string[] = [];
  const ids: string[] = [];
  objects.forEach((object, index) => {
    const o = object as K8sObject;
    const iface = `I${o.kind}`;
    lines.push(`import type { ${iface} as T${index} } from '${modelPath(o.apiVersion, o.kind)}';`);
    lines.push(`export const o${index}: T${index} = ${JSON.stringify(object)};`);
    ids.push(`${o.kind}/${o.metadata?.name}`);
  });
  const fileName = `${DEPLOY_DIR}/__k8s_objects__.ts`;
  const source = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    target: ts.ScriptTarget.ES2022,
    types: [],
    baseUrl: dirname(require.resolve('kubernetes-models/package.json')),
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, languageVersion, onError, create) =>
    name === fileName
      ? ts.createSourceFile(name, source, languageVersion, true)
      : getSourceFile(name, languageVersion, onError, create);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === fileName ? source : readFile(name));
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);
  const sourceFile = program.getSourceFile(fileName);
  const diagnostics = [
    ...program.getSyntacticDiagnostics(sourceFile),
    ...program.getSemanticDiagnostics(sourceFile),
  ];
  return diagnostics.map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    // Line 2k+1 (0-based) holds object k.
    const id = line >= 0 ? ids[Math.floor(line / 2)] : undefined;
    return `${id ?? '?'}: ${message}`;
  });
}
