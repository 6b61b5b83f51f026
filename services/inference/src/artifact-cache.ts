import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { DownloadArtifactResponse } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { type ArtifactFile, artifactManifest, validateArtifactPath } from '@ballast/ml/artifact';

const DIGEST = /^[0-9a-f]{64}$/;

/** An artifact whose bytes do not match what the registry's manifest promised. */
export class ArtifactIntegrityError extends Error {
  override name = 'ArtifactIntegrityError';
}

/**
 * Model artifacts on local disk, by digest: `<dir>/<digest>/<path>`. A cached artifact is
 * re-verified against its digest when read; a download is verified file by file and as a
 * whole before it is written, then renamed into place, so a cut download leaves nothing.
 */
export class ArtifactCache {
  constructor(readonly dir: string) {}

  async get(
    digest: string,
    download: () => AsyncIterable<DownloadArtifactResponse>,
  ): Promise<ArtifactFile[]> {
    if (!DIGEST.test(digest))
      throw new ArtifactIntegrityError(`artifact digest "${digest}" is not a sha256 hex digest`);
    const cached = await this.#read(digest);
    if (cached) return cached;
    const files = await this.#download(digest, download());
    await this.#write(digest, files);
    return files;
  }

  async #read(digest: string): Promise<ArtifactFile[] | undefined> {
    const root = join(this.dir, digest);
    let paths: string[];
    try {
      paths = (await readdir(root, { recursive: true, withFileTypes: true }))
        .filter((entry) => entry.isFile())
        .map((entry) => join(entry.parentPath, entry.name).slice(root.length + 1));
    } catch {
      return undefined;
    }
    const files = await Promise.all(
      paths.map(async (path) => ({
        path: path.split('\\').join('/'),
        data: new Uint8Array(await readFile(join(root, path))),
      })),
    );
    if (files.length > 0 && artifactManifest(files).digest === digest) return files;
    await rm(root, { recursive: true, force: true });
    return undefined;
  }

  async #download(digest: string, stream: AsyncIterable<DownloadArtifactResponse>): Promise<ArtifactFile[]> {
    const chunks = new Map<string, Buffer[]>();
    let manifest: { path: string }[] | undefined;
    for await (const message of stream) {
      if (message.part.case === 'manifest') {
        manifest = message.part.value.files.map((f) => ({ path: validateArtifactPath(f.path) }));
        for (const file of manifest) chunks.set(file.path, []);
      } else if (message.part.case === 'chunk') {
        const list = chunks.get(message.part.value.path);
        if (!manifest || !list) {
          throw new ArtifactIntegrityError(
            `artifact ${digest}: a chunk of "${message.part.value.path}" outside the manifest`,
          );
        }
        list.push(Buffer.from(message.part.value.data));
      }
    }
    if (!manifest) throw new ArtifactIntegrityError(`artifact ${digest}: the download sent no manifest`);
    const files = manifest.map(({ path }) => ({
      path,
      data: new Uint8Array(Buffer.concat(chunks.get(path) ?? [])),
    }));
    const actual = artifactManifest(files).digest;
    if (actual !== digest) {
      throw new ArtifactIntegrityError(`artifact ${digest}: the downloaded bytes hash to ${actual}`);
    }
    return files;
  }

  async #write(digest: string, files: ArtifactFile[]): Promise<void> {
    const staging = join(this.dir, `.${digest}.${process.pid}.${Date.now()}`);
    try {
      for (const file of files) {
        const target = join(staging, file.path);
        await mkdir(dirname(target), { recursive: true });
        await writeFile(target, file.data);
      }
      await mkdir(this.dir, { recursive: true });
      await rename(staging, join(this.dir, digest)).catch(async () => {
        // Another load of the same digest won the race: its copy is as good as ours.
        await rm(staging, { recursive: true, force: true });
      });
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
  }
}
