import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Removes the temporary files uploads left behind when a registry was killed mid-upload.
 * BlobStore writes each blob to `<root>/sha256/.tmp-<uuid>` and renames it into place; a
 * process that dies in between leaves the file, and nothing else ever removes it.
 *
 * Only files last written before `before` (this process's start) go: an upload of another
 * replica sharing the directory writes its temporary file continually, so its file is newer.
 */
export async function sweepTempFiles(
  rootDir: string,
  before: number,
): Promise<{ files: number; bytes: number }> {
  const dir = join(rootDir, 'sha256');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') return { files: 0, bytes: 0 };
    throw err;
  }
  let files = 0;
  let bytes = 0;
  for (const name of names) {
    if (!name.startsWith('.tmp-')) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile() || info.mtimeMs >= before) continue;
    await rm(path, { force: true });
    files++;
    bytes += info.size;
  }
  return { files, bytes };
}
