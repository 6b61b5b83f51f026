// A small, strict kustomize: enough of `kustomize build` for the manifests in deploy/k8s, so CI can
// render every overlay without the kustomize binary or a cluster. It understands `resources` (files
// and directories with a kustomization.yaml), `namespace`, `images` and `patches` given as
// strategic-merge patch files; anything else in a kustomization.yaml is an error, never ignored.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isRecord, loadYaml, loadYamlDocuments } from './yaml.js';

export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name: string; namespace?: string };
};

const KNOWN_FIELDS = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images', 'patches']);

/** Kinds that have no namespace; the namespace transformer leaves them alone. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'PersistentVolume',
  'StorageClass',
  'PriorityClass',
]);

/**
 * Lists merged by key, as the Kubernetes strategic merge patch does for these fields (their
 * patchMergeKey); every other list is replaced whole (tolerations, args, command...).
 */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  imagePullSecrets: 'name',
};

export function asK8sObject(value: unknown, source: string): K8sObject {
  if (!isRecord(value)) throw new Error(`${source}: a resource must be a mapping`);
  const { apiVersion, kind, metadata } = value;
  if (typeof apiVersion !== 'string' || typeof kind !== 'string')
    throw new Error(`${source}: a resource needs apiVersion and kind`);
  if (!isRecord(metadata) || typeof metadata.name !== 'string')
    throw new Error(`${source}: ${kind} needs metadata.name`);
  return value as K8sObject;
}

export const objectId = (o: K8sObject) => `${o.kind}/${o.metadata.name}`;

/** Strategic merge of `patch` into `target` (returns a new value; `null` in the patch deletes). */
export function strategicMerge(target: unknown, patch: unknown, field = ''): unknown {
  if (isRecord(target) && isRecord(patch)) {
    const merged: Record<string, unknown> = { ...target };
    for (const [key, value] of Object.entries(patch)) {
      if (value === null) delete merged[key];
      else merged[key] = key in target ? strategicMerge(target[key], value, key) : value;
    }
    return merged;
  }
  const mergeKey = MERGE_KEYS[field];
  if (Array.isArray(target) && Array.isArray(patch) && mergeKey) {
    const merged = [...target];
    for (const item of patch) {
      const index = isRecord(item)
        ? merged.findIndex((t) => isRecord(t) && t[mergeKey] === item[mergeKey])
        : -1;
      if (index >= 0) merged[index] = strategicMerge(merged[index], item, '');
      else merged.push(item);
    }
    return merged;
  }
  return patch;
}

function setImages(object: K8sObject, images: Array<{ name: string; newName?: string; newTag?: string }>) {
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (isRecord(node)) {
      for (const key of ['containers', 'initContainers']) {
        const list = node[key];
        if (!Array.isArray(list)) continue;
        for (const container of list) {
          if (!isRecord(container) || typeof container.image !== 'string') continue;
          const [name = '', tag] = splitImage(container.image);
          const rule = images.find((i) => i.name === name);
          if (rule)
            container.image = `${rule.newName ?? name}${(rule.newTag ?? tag) ? `:${rule.newTag ?? tag}` : ''}`;
        }
      }
      Object.values(node).forEach(visit);
    }
  };
  visit(object);
}

/** `registry:5000/ballast/ingest:0.1.0` -> [`registry:5000/ballast/ingest`, `0.1.0`] */
export function splitImage(image: string): [string, string | undefined] {
  const at = image.indexOf('@');
  const base = at >= 0 ? image.slice(0, at) : image;
  const colon = base.lastIndexOf(':');
  if (colon > base.lastIndexOf('/')) return [base.slice(0, colon), base.slice(colon + 1)];
  return [base, undefined];
}

function readKustomization(dir: string): Record<string, unknown> {
  const file = join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const k = loadYaml(file);
  if (!isRecord(k)) throw new Error(`${file}: must be a mapping`);
  for (const key of Object.keys(k))
    if (!KNOWN_FIELDS.has(key)) throw new Error(`${file}: field "${key}" is not supported by this renderer`);
  if (k.kind !== 'Kustomization') throw new Error(`${file}: kind must be Kustomization`);
  return k;
}

/** Renders the kustomization in `dir` (like `kustomize build dir`). */
export function kustomizeBuild(dir: string): K8sObject[] {
  const root = resolve(dir);
  const k = readKustomization(root);
  const file = join(root, 'kustomization.yaml');
  let objects: K8sObject[] = [];

  for (const entry of (k.resources as unknown[] | undefined) ?? []) {
    if (typeof entry !== 'string') throw new Error(`${file}: resources must be paths`);
    const path = resolve(root, entry);
    if (!existsSync(path)) throw new Error(`${file}: resource ${entry} does not exist`);
    if (statSync(path).isDirectory()) objects.push(...kustomizeBuild(path));
    else objects.push(...loadYamlDocuments(path).map((d, i) => asK8sObject(d, `${path}#${i}`)));
  }

  for (const patch of (k.patches as unknown[] | undefined) ?? []) {
    if (
      !isRecord(patch) ||
      typeof patch.path !== 'string' ||
      Object.keys(patch).some((key) => key !== 'path')
    )
      throw new Error(`${file}: each patch must be { path } to a strategic-merge patch file`);
    const patchFile = resolve(root, patch.path);
    const documents = loadYamlDocuments(patchFile);
    if (documents.length !== 1) throw new Error(`${patchFile}: one patch per file`);
    const body = asK8sObject(documents[0], patchFile);
    const index = objects.findIndex((o) => o.kind === body.kind && o.metadata.name === body.metadata.name);
    if (index < 0) throw new Error(`${patchFile}: patches ${objectId(body)}, which no resource defines`);
    // `$patch: delete` removes the object, as kustomize's strategic merge does.
    if ((body as { $patch?: unknown }).$patch === 'delete') objects.splice(index, 1);
    else objects[index] = strategicMerge(objects[index], body) as K8sObject;
  }

  const images = k.images as Array<{ name: string; newName?: string; newTag?: string }> | undefined;
  if (images) for (const o of objects) setImages(o, images);

  if (typeof k.namespace === 'string') {
    const namespace = k.namespace;
    objects = objects.map((o) =>
      CLUSTER_SCOPED.has(o.kind) ? o : { ...o, metadata: { ...o.metadata, namespace } },
    );
  }

  const seen = new Set<string>();
  for (const o of objects) {
    const id = objectId(o);
    if (seen.has(id)) throw new Error(`${file}: ${id} is defined twice`);
    seen.add(id);
  }
  return structuredClone(objects);
}

/** The kustomization directories under deploy/k8s: base and every overlay. */
export function kustomizationDirs(k8sDir: string): string[] {
  const overlays = join(k8sDir, 'overlays');
  const names = existsSync(overlays)
    ? readdirSync(overlays, { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort()
    : [];
  return [join(k8sDir, 'base'), ...names.map((name) => join(overlays, name))];
}
