import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RegistryService } from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import type { ServiceClient } from '@ballast/grpc-kit';
import type { Sql } from '@ballast/storage';
import { timestampMs } from '@bufbuild/protobuf/wkt';
import { escapeHtml, lineChart, type Series } from './charts.js';
import { isClassification, windowMs } from './model-baseline.js';
import type { OperationsScraper } from './operations.js';
import { driftReport } from './report.js';
import { firingAlerts } from './store/alerts.js';
import { baselineVersions, getBaseline } from './store/baselines.js';
import { addSums, type ErrorSums, readErrors } from './store/errors.js';
import { latestWindow, newestVersion, readWindows } from './store/windows.js';

/**
 * The dashboard on the monitor's HTTP port: `/` lists the models, `/dashboard?model=NAME`
 * draws one model's drift per feature and segment over time (PSI, share of drifted
 * features), error over time per segment with the deployments from registry as markers,
 * latency, and the services' CPU, memory and event-loop lag. Charts are inline SVG made
 * here (no script, no CDN); a short inline script only measures the drawn paths
 * (`data-length`), which is what the headless-browser test reads back.
 */

export interface DeploymentMarker {
  time: number;
  label: string;
}

export type DeploymentSource = (model: string) => Promise<DeploymentMarker[]>;

/** Alias changes from registry's ListDeployments, newest first, as markers. */
export function registryDeployments(registry: ServiceClient<typeof RegistryService>): DeploymentSource {
  return async (model) => {
    const { deployments } = await registry.listDeployments({ model, pageSize: 100 });
    return deployments
      .filter((d) => d.time)
      .map((d) => ({ time: timestampMs(d.time as never), label: `${d.alias} v${d.toVersion}` }));
  };
}

export interface DashboardDeps {
  sql: () => Sql;
  registry?: ServiceClient<typeof RegistryService> | undefined;
  deployments?: DeploymentSource | undefined;
  operations?: OperationsScraper | undefined;
  /** Windows drawn by default. */
  windows?: number;
}

const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fafafa;border:1px solid #ddd}
.title{font-size:13px;font-weight:600}.tick{font-size:10px;fill:#666}.legend{font-size:10px}.note{font-size:12px;fill:#999}
.grid{stroke:#eee}.axis{stroke:#999}.threshold{stroke:#d62728;stroke-dasharray:2 3}
.marker line{stroke:#555;stroke-dasharray:5 3}.marker text{font-size:10px;fill:#555}table{border-collapse:collapse}td,th{padding:2px 8px;text-align:left}`;

const MEASURE = `<script>for(const p of document.querySelectorAll('path.series'))p.setAttribute('data-length',p.getTotalLength().toFixed(1));document.body.dataset.measured='true'</script>`;

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head><body>${body}${MEASURE}</body></html>`;
}

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(html);
}

function segmentName(s: string): string {
  return s || 'all rows';
}

function push(map: Map<string, Series>, name: string, point: [number, number]): void {
  const s = map.get(name) ?? { name, points: [] };
  s.points.push(point);
  map.set(name, s);
}

async function modelsPage(deps: DashboardDeps): Promise<string> {
  const rows = await baselineVersions(deps.sql());
  const list = rows
    .map(
      (r) =>
        `<li><a href="/dashboard?model=${encodeURIComponent(r.model)}">${escapeHtml(r.model)}</a> (versions ${r.versions.join(', ')})</li>`,
    )
    .join('');
  return page('Ballast monitor', `<h1>Ballast monitor</h1><ul>${list || '<li>no models yet</li>'}</ul>`);
}

export async function modelPage(
  deps: DashboardDeps,
  model: string,
  windowsWanted: number,
): Promise<string | undefined> {
  const sql = deps.sql();
  const version = await newestVersion(sql, model);
  const baseline = version ? await getBaseline(sql, model, version) : undefined;
  if (!baseline || !version) return undefined;
  const width = windowMs(baseline.config);
  const start = ((await latestWindow(sql, model, version)) ?? 0) - (windowsWanted - 1) * width;
  const report = driftReport(baseline, await readWindows(sql, { model, version, start }));

  // Drift: PSI per feature (one chart each, a line per segment), and the share of drifted features.
  const psi = new Map<string, Map<string, Series>>();
  const share = new Map<string, Series>();
  const latency = new Map<string, Series>();
  for (const w of report) {
    const t = timestampMs(w.windowStart as never);
    const seg = segmentName(w.segment ?? '');
    for (const f of w.features ?? []) {
      if (f.insufficient) continue;
      const byFeature = psi.get(f.feature ?? '') ?? new Map<string, Series>();
      push(byFeature, seg, [t, f.psi ?? Number.NaN]);
      psi.set(f.feature ?? '', byFeature);
    }
    if ((w.features ?? []).some((f) => !f.insufficient && !f.isPrediction))
      push(share, seg, [t, w.driftShare ?? 0]);
    if (!w.segment) {
      push(latency, 'p50', [t, w.latencyP50Ms ?? Number.NaN]);
      push(latency, 'p99', [t, w.latencyP99Ms ?? Number.NaN]);
    }
  }
  const psiAlert = baseline.config.drift?.psiAlert || 0.2;
  const driftCharts = [
    lineChart({
      id: 'drift-share',
      title: 'Share of drifted features, per segment',
      series: [...share.values()],
      threshold: baseline.config.drift?.driftShare || 0.5,
    }),
    ...[...psi].map(([feature, bySegment]) =>
      lineChart({
        id: `psi-${feature}`,
        title: `PSI of ${feature}, per segment`,
        series: [...bySegment.values()],
        threshold: psiAlert,
      }),
    ),
  ];

  // Error over time per segment, with the deployments.
  const classification = isClassification(baseline.config);
  const errors = await readErrors(sql, { model, version: 0, start });
  const error = new Map<string, Series>();
  const merged = new Map<string, { seg: string; t: number; s: ErrorSums }>();
  for (const [key, s] of errors) {
    const id = `${key.windowStart}|${key.segment}`;
    const m = merged.get(id);
    if (m) addSums(m.s, s);
    else merged.set(id, { seg: key.segment, t: key.windowStart, s: { ...s } });
  }
  for (const { seg, t, s } of merged.values())
    push(error, segmentName(seg), [t, classification ? 1 - s.correct / s.n : s.sumAbs / s.n]);
  let markers: { x: number; label: string }[] = [];
  let markerNote = '';
  const source = deps.deployments ?? (deps.registry ? registryDeployments(deps.registry) : undefined);
  if (source) {
    try {
      markers = (await source(model))
        .filter((m) => m.time >= start)
        .map((m) => ({ x: m.time, label: m.label }));
    } catch (err) {
      markerNote = `<p class="note">deployments unavailable: ${escapeHtml(err instanceof Error ? err.message : String(err))}</p>`;
    }
  }
  const errorChart = lineChart({
    id: 'error',
    title: classification ? 'Error rate (1 - accuracy), per segment' : 'MAE per segment',
    series: [...error.values()],
    markers,
  });
  const latencyChart = lineChart({
    id: 'latency',
    title: 'Latency (ms), logged predictions',
    series: [...latency.values()],
  });

  // Operations: resources per service.
  const ops = deps.operations;
  const resources = {
    cpu: new Map<string, Series>(),
    memory: new Map<string, Series>(),
    lag: new Map<string, Series>(),
  };
  for (const t of ops?.targets ?? []) {
    for (const p of ops?.history(t.service) ?? []) {
      if (!p.up) continue;
      if (Number.isFinite(p.cpuPercent)) push(resources.cpu, t.service, [p.at, p.cpuPercent]);
      if (Number.isFinite(p.memoryBytes)) push(resources.memory, t.service, [p.at, p.memoryBytes / 2 ** 20]);
      if (Number.isFinite(p.eventLoopLagMs)) push(resources.lag, t.service, [p.at, p.eventLoopLagMs]);
    }
  }
  const opsCharts = ops
    ? [
        lineChart({ id: 'cpu', title: 'CPU (%) per service', series: [...resources.cpu.values()] }),
        lineChart({
          id: 'memory',
          title: 'Resident memory (MiB) per service',
          series: [...resources.memory.values()],
        }),
        lineChart({
          id: 'lag',
          title: 'Event-loop lag (ms) per service',
          series: [...resources.lag.values()],
        }),
      ]
    : [];
  const title = `${model} v${version}`;
  // The alerts firing now, one line each (what the charts above explain).
  const alertLines = (await firingAlerts(sql, model, 50))
    .map(
      (a) =>
        `<li class="alert">${escapeHtml(a.rule)} on ${escapeHtml(segmentName(a.segment))}: ${Number(a.value.toPrecision(4))} ≥ ${a.threshold}` +
        ` since ${new Date(timestampMs(a.activeSince as never)).toISOString()}` +
        (a.retrainJobId ? ` · retraining ${escapeHtml(a.retrainJobId)}` : '') +
        (a.retrainSkipped ? ` · no retraining: ${escapeHtml(a.retrainSkipped)}` : '') +
        '</li>',
    )
    .join('');
  return page(
    `Ballast monitor: ${title}`,
    `<h1>${escapeHtml(title)}</h1><p><a href="/">all models</a> · windows of ${width / 1000} s, the last ${windowsWanted}</p>
<h2>Alerts firing</h2><ul id="alerts">${alertLines || '<li>none</li>'}</ul>
<h2>Drift</h2><div class="charts" id="drift">${driftCharts.join('')}</div>
<h2>Error</h2><div class="charts" id="errors">${errorChart}</div>${markerNote}
<h2>Latency</h2><div class="charts" id="latency-charts">${latencyChart}</div>
${opsCharts.length ? `<h2>Services</h2><div class="charts" id="services">${opsCharts.join('')}</div>` : ''}`,
  );
}

export function dashboardRoutes(
  deps: DashboardDeps,
): Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> {
  return {
    '/': async (_req, res) => send(res, 200, await modelsPage(deps)),
    '/dashboard': async (req, res) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const model = url.searchParams.get('model') ?? '';
      const n = Number(url.searchParams.get('windows') ?? deps.windows ?? 48);
      const windows = Number.isInteger(n) && n > 0 && n <= 1000 ? n : 48;
      const html = model ? await modelPage(deps, model, windows) : undefined;
      if (!html)
        return send(
          res,
          404,
          page(
            'not found',
            `<p>No model "${escapeHtml(model)}" with logged predictions. <a href="/">All models</a></p>`,
          ),
        );
      send(res, 200, html);
    },
  };
}
