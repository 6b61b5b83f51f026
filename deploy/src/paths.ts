import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** deploy/ */
export const DEPLOY_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** The repository root. */
export const REPO_ROOT = resolve(DEPLOY_DIR, '..');

export const deployPath = (...parts: string[]) => join(DEPLOY_DIR, ...parts);
export const repoPath = (...parts: string[]) => join(REPO_ROOT, ...parts);
