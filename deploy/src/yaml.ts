import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/**
 * Every document of a YAML file as plain data. `<<` merge keys are resolved (compose files use
 * them), and a syntax error or a duplicate key throws with the file name instead of passing silently.
 */
export function loadYamlDocuments(path: string): unknown[] {
  return parseYamlDocuments(readFileSync(path, 'utf8'), path);
}

export function parseYamlDocuments(text: string, source = '<text>'): unknown[] {
  const documents = parseAllDocuments(text, { merge: true, uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(documents)) return [];
  const values: unknown[] = [];
  for (const document of documents) {
    const problem = document.errors[0];
    if (problem) throw new Error(`${source}: ${problem.message}`);
    const value: unknown = document.toJS({ maxAliasCount: 1000 });
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

export function loadYaml(path: string): unknown {
  const documents = loadYamlDocuments(path);
  if (documents.length !== 1)
    throw new Error(`${path}: expected one YAML document, found ${documents.length}`);
  return documents[0];
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
