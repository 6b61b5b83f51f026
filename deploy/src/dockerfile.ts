// Just enough Dockerfile parsing to check deploy/Dockerfile's structure without a Docker engine:
// stages (FROM ... AS name), the global ARGs their FROM lines use, and each stage's instructions.
// Syntax itself is checked by dockerfile-utils, the linter behind VS Code's Dockerfile support.
import { validate } from 'dockerfile-utils';

/** Syntax errors and warnings (unknown flags, bad ports, missing arguments), as `line N: message`. */
export function dockerfileLintProblems(text: string): string[] {
  return validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
}

export interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ENV, USER, CMD... */
  keyword: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string | undefined;
  /** The FROM argument with global ARG defaults substituted. */
  from: string;
  /** The stage this one builds on, when FROM names an earlier stage. */
  parent: Stage | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  globalArgs: Record<string, string>;
  stages: Stage[];
}

function logicalLines(text: string): Array<{ text: string; line: number }> {
  const result: Array<{ text: string; line: number }> = [];
  let current: { text: string; line: number } | undefined;
  text.split('\n').forEach((raw, index) => {
    const trimmed = raw.trim();
    if (!current && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (current && trimmed.startsWith('#')) return; // comment lines inside a continuation
    const continues = trimmed.endsWith('\\');
    const piece = continues ? trimmed.slice(0, -1) : trimmed;
    if (current) current.text += ` ${piece}`;
    else current = { text: piece, line: index + 1 };
    if (!continues) {
      result.push(current);
      current = undefined;
    }
  });
  if (current) result.push(current);
  return result;
}

const substitute = (value: string, args: Record<string, string>) =>
  value.replace(/\$\{(\w+)\}|\$(\w+)/g, (match, a: string | undefined, b: string | undefined) => {
    const name = a ?? b ?? '';
    return name in args ? (args[name] ?? '') : match;
  });

export function parseDockerfile(text: string): Dockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { text: line, line: number } of logicalLines(text)) {
    const match = /^(\w+)\s*(.*)$/.exec(line);
    if (!match) throw new Error(`Dockerfile line ${number}: cannot parse "${line}"`);
    const keyword = (match[1] ?? '').toUpperCase();
    const args = match[2] ?? '';
    if (keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from?.[1]) throw new Error(`Dockerfile line ${number}: bad FROM "${args}"`);
      const base = substitute(from[1], globalArgs);
      const parent = stages.find((s) => s.name === base);
      stages.push({ name: from[2], from: base, parent, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (keyword !== 'ARG') throw new Error(`Dockerfile line ${number}: ${keyword} before the first FROM`);
      const arg = /^(\w+)(?:=(.*))?$/.exec(args.trim());
      if (arg?.[1]) globalArgs[arg[1]] = arg[2] ?? '';
      continue;
    }
    stage.instructions.push({ keyword, args, line: number });
  }
  return { globalArgs, stages };
}

/** A stage and the stages it builds on, nearest first. */
export function lineage(stage: Stage): Stage[] {
  const chain: Stage[] = [];
  for (let s: Stage | undefined = stage; s; s = s.parent) chain.push(s);
  return chain;
}

/** The image a stage finally runs on (the FROM of its root stage). */
export const baseImage = (stage: Stage) => lineage(stage).at(-1)?.from ?? stage.from;

/** The last value of an instruction along the stage's lineage (USER, CMD, ENTRYPOINT...). */
export function effective(stage: Stage, keyword: string): string | undefined {
  for (const s of lineage(stage)) {
    const found = s.instructions.filter((i) => i.keyword === keyword).at(-1);
    if (found) return found.args;
  }
  return undefined;
}

/** ENV values along the lineage (nearest stage wins). Understands `ENV A=1 B=2` and `ENV A 1`. */
export function effectiveEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of lineage(stage).reverse()) {
    for (const i of s.instructions.filter((x) => x.keyword === 'ENV')) {
      if (!i.args.includes('=')) {
        const [name, ...rest] = i.args.split(/\s+/);
        if (name) env[name] = rest.join(' ');
        continue;
      }
      for (const m of i.args.matchAll(/(\w+)=("([^"]*)"|\S*)/g)) if (m[1]) env[m[1]] = m[3] ?? m[2] ?? '';
    }
  }
  return env;
}
