import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';

/**
 * A new PGlite directory starts as a copy of one initialised cluster kept beside it.
 *
 * Why: PGlite's initdb costs seconds of CPU, and `ballast up` starts four database
 * services at once; on a two-core machine four initdbs in parallel were most of a cold
 * start. Copying an initialised cluster takes a fraction of a second, so the first
 * process to need one builds the template (under a lock the others wait on) and every
 * directory after that is a copy.
 */
const TEMPLATE = '.template';
const LOCK = '.template.lock';
// A lock older than this belongs to a process that died while building the template.
const STALE_LOCK_MS = 120_000;
const POLL_MS = 100;

export async function seedFromTemplate(dir: string): Promise<void> {
  if (await isCluster(dir)) return;
  const root = dirname(dir);
  const template = join(root, TEMPLATE);
  await ensureTemplate(root, template);
  // Copy beside the target, then rename: a crash mid-copy never leaves a half cluster
  // where the service would open it.
  const staging = `${dir}.seeding-${process.pid}-${Date.now()}`;
  try {
    await cp(template, staging, { recursive: true });
    await rm(dir, { recursive: true, force: true }); // empty, or a leftover without PG_VERSION
    await rename(staging, dir);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

async function ensureTemplate(root: string, template: string): Promise<void> {
  await mkdir(root, { recursive: true });
  const lock = join(root, LOCK);
  for (;;) {
    if (await isCluster(template)) return;
    if (await tryLock(lock)) {
      try {
        if (!(await isCluster(template))) await buildTemplate(template);
      } finally {
        await rm(lock, { recursive: true, force: true });
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function buildTemplate(template: string): Promise<void> {
  const building = `${template}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  const db = await PGlite.create({ dataDir: building });
  await db.close();
  await rm(template, { recursive: true, force: true });
  await rename(building, template);
}

async function tryLock(lock: string): Promise<boolean> {
  try {
    await mkdir(lock);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const held = await stat(lock).catch(() => undefined);
  if (held && Date.now() - held.mtimeMs > STALE_LOCK_MS) await rm(lock, { recursive: true, force: true });
  return false;
}

async function isCluster(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).includes('PG_VERSION');
  } catch {
    return false;
  }
}
