import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where a model was trained, for its lineage: the versions that decide the arithmetic
 * (Node, tfjs, backend, platform) and the code (commit and lockfile hash). Read once.
 */
export interface TrainingEnvironment {
  nodeVersion: string;
  tfjsVersion: string;
  backend: string;
  platform: string;
  codeCommit: string;
  lockfileHash: string;
}

export function trainingEnvironment(tfjsVersion: string, backend: string): TrainingEnvironment {
  const root = repositoryRoot();
  return {
    nodeVersion: process.version,
    tfjsVersion,
    backend,
    platform: `${process.platform}-${process.arch}`,
    codeCommit: process.env.BALLAST_CODE_COMMIT || gitCommit(root) || 'unknown',
    lockfileHash: lockfileHash(root),
  };
}

function repositoryRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (dirname(dir) !== dir) {
    if (existsSync(join(dir, 'package-lock.json'))) return dir;
    dir = dirname(dir);
  }
  return undefined;
}

function gitCommit(root: string | undefined): string | undefined {
  if (!root) return undefined;
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return undefined; // not a checkout (an image): BALLAST_CODE_COMMIT says it
  }
}

function lockfileHash(root: string | undefined): string {
  if (!root) return 'unknown';
  return createHash('sha256')
    .update(readFileSync(join(root, 'package-lock.json')))
    .digest('hex');
}
