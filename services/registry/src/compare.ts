import type {
  CompareVersionsResponseSchema,
  Lineage,
  MetricDeltaSchema,
  ModelVersion,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';

type Comparison = MessageInitShape<typeof CompareVersionsResponseSchema>;
type MetricDelta = MessageInitShape<typeof MetricDeltaSchema>;

const relative = (a: number, b: number) => (a === 0 ? 0 : (b - a) / Math.abs(a));

/** What changed from version a to version b: metrics, latency, cost, and which inputs. */
export function compareVersions(a: ModelVersion, b: ModelVersion): Comparison {
  return {
    a,
    b,
    metrics: metricDeltas(a, b),
    latency: (b.servingProfile?.latency ?? []).flatMap((point) => {
      const before = a.servingProfile?.latency.find((p) => p.batchSize === point.batchSize);
      if (!before) return [];
      return [
        {
          batchSize: point.batchSize,
          aP99Ms: before.p99Ms,
          bP99Ms: point.p99Ms,
          relative: relative(before.p99Ms, point.p99Ms),
        },
      ];
    }),
    costRelative: relative(a.servingProfile?.costPerMillion ?? 0, b.servingProfile?.costPerMillion ?? 0),
    lineage: lineageDiff(a.lineage, b.lineage),
  };
}

function metricDeltas(a: ModelVersion, b: ModelVersion): MetricDelta[] {
  const key = (m: { name: string; evalSet: string; segment: string }) =>
    `${m.name}\u0000${m.evalSet}\u0000${m.segment}`;
  const rows = new Map<string, MetricDelta>();
  for (const m of a.metrics)
    rows.set(key(m), { name: m.name, evalSet: m.evalSet, segment: m.segment, a: m.value, b: 0 });
  for (const m of b.metrics) {
    const row = rows.get(key(m));
    if (row) {
      row.b = m.value;
      row.inBoth = true;
    } else rows.set(key(m), { name: m.name, evalSet: m.evalSet, segment: m.segment, a: 0, b: m.value });
  }
  return [...rows.values()]
    .map((row) => ({
      ...row,
      delta: row.inBoth ? (row.b ?? 0) - (row.a ?? 0) : 0,
      relative: row.inBoth ? relative(row.a ?? 0, row.b ?? 0) : 0,
    }))
    .sort((x, y) => key(x as never).localeCompare(key(y as never)));
}

/** Flattens a lineage to "path: value" leaves so a diff names exactly what differs. */
function leaves(lineage: Lineage | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!lineage) return out;
  const put = (path: string, value: string | bigint) => out.set(path, String(value));
  put('lineage.dataset.name', lineage.dataset?.name ?? '');
  put('lineage.dataset.version', lineage.dataset?.version ?? '');
  put('lineage.feature_view.name', lineage.featureView?.name ?? '');
  put('lineage.feature_view.version', lineage.featureView?.version ?? '');
  for (const [k, v] of Object.entries(lineage.config?.hyperparameters ?? {}))
    put(`lineage.config.hyperparameters[${k}]`, v);
  put('lineage.config.seed', lineage.config?.seed ?? 0n);
  const env = lineage.environment;
  put('lineage.environment.node_version', env?.nodeVersion ?? '');
  put('lineage.environment.tfjs_version', env?.tfjsVersion ?? '');
  put('lineage.environment.backend', env?.backend ?? '');
  put('lineage.environment.platform', env?.platform ?? '');
  put('lineage.environment.code_commit', env?.codeCommit ?? '');
  put('lineage.environment.lockfile_hash', env?.lockfileHash ?? '');
  return out;
}

function lineageDiff(a: Lineage | undefined, b: Lineage | undefined): Comparison['lineage'] {
  const before = leaves(a);
  const after = leaves(b);
  const changes: string[] = [];
  for (const path of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const x = before.get(path);
    const y = after.get(path);
    if (x !== y) changes.push(`${path}: ${x ?? '(none)'} -> ${y ?? '(none)'}`);
  }
  const changed = (prefix: string) => changes.some((c) => c.startsWith(prefix));
  return {
    dataChanged: changed('lineage.dataset.'),
    featuresChanged: changed('lineage.feature_view.'),
    configChanged: changed('lineage.config.'),
    // The code is the commit and the locked dependency tree it ran with.
    codeChanged: changed('lineage.environment.code_commit') || changed('lineage.environment.lockfile_hash'),
    environmentChanged:
      changed('lineage.environment.node_version') ||
      changed('lineage.environment.tfjs_version') ||
      changed('lineage.environment.backend') ||
      changed('lineage.environment.platform'),
    changes,
  };
}
