/**
 * Line charts as inline SVG, drawn on the server: no script, no CDN, nothing to fetch. Each
 * series is one `<path class="series">` (with a dot per point, so a single window shows),
 * vertical markers (deployments) are dashed lines with a label, a threshold a dotted line.
 */

export interface Series {
  name: string;
  points: [number, number][];
}

export interface ChartOptions {
  title: string;
  series: Series[];
  /** x positions (ms since the epoch) with a label, drawn as vertical lines. */
  markers?: { x: number; label: string }[];
  threshold?: number;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Chart id, for tests and links. */
  id: string;
}

const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function niceTicks(min: number, max: number, count = 4): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const step = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let t = Math.ceil(min / nice) * nice; t <= max + nice * 1e-9; t += nice)
    ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

function timeLabel(ms: number, spanMs: number): string {
  const iso = new Date(ms).toISOString();
  return spanMs > 2 * 86_400_000
    ? iso.slice(5, 10)
    : spanMs > 3_600_000
      ? iso.slice(5, 16).replace('T', ' ')
      : iso.slice(11, 19);
}

export function lineChart(o: ChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? 220;
  const pad = { left: 56, right: 12, top: 28, bottom: 40 };
  const series = o.series.map((s) => ({
    ...s,
    points: s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)),
  }));
  const xs = [...series.flatMap((s) => s.points.map((p) => p[0])), ...(o.markers ?? []).map((m) => m.x)];
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  if (o.threshold !== undefined) ys.push(o.threshold);
  const title = `<text x="${pad.left}" y="18" class="title">${escapeHtml(o.title)}</text>`;
  if (ys.length === 0 || xs.length === 0) {
    return `<svg id="${escapeHtml(o.id)}" class="chart empty" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${title}<text x="${width / 2}" y="${height / 2}" text-anchor="middle" class="note">no data yet</text></svg>`;
  }
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  const y0 = Math.min(0, ...ys);
  let y1 = Math.max(...ys);
  if (y1 === y0) y1 = y0 + 1;
  y1 += (y1 - y0) * 0.05;
  const px = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const py = (y: number) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  const parts: string[] = [title];
  for (const t of niceTicks(y0, y1)) {
    parts.push(
      `<line x1="${pad.left}" x2="${width - pad.right}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" class="grid"/>`,
      `<text x="${pad.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end" class="tick">${Number(t.toPrecision(4))}</text>`,
    );
  }
  const xTicks = 4;
  for (let i = 0; i <= xTicks; i++) {
    const x = x0 + ((x1 - x0) * i) / xTicks;
    parts.push(
      `<text x="${px(x).toFixed(1)}" y="${height - pad.bottom + 16}" text-anchor="middle" class="tick">${timeLabel(x, x1 - x0)}</text>`,
    );
  }
  parts.push(
    `<line x1="${pad.left}" x2="${pad.left}" y1="${pad.top}" y2="${height - pad.bottom}" class="axis"/>`,
    `<line x1="${pad.left}" x2="${width - pad.right}" y1="${height - pad.bottom}" y2="${height - pad.bottom}" class="axis"/>`,
  );
  if (o.yLabel)
    parts.push(
      `<text x="12" y="${pad.top + 4}" class="tick" transform="rotate(-90 12 ${pad.top + 4})" text-anchor="end">${escapeHtml(o.yLabel)}</text>`,
    );
  if (o.threshold !== undefined)
    parts.push(
      `<line x1="${pad.left}" x2="${width - pad.right}" y1="${py(o.threshold).toFixed(1)}" y2="${py(o.threshold).toFixed(1)}" class="threshold"/>`,
    );
  for (const m of o.markers ?? []) {
    const x = px(m.x).toFixed(1);
    parts.push(
      `<g class="marker"><line x1="${x}" x2="${x}" y1="${pad.top}" y2="${height - pad.bottom}"/><text x="${x}" y="${pad.top - 2}" text-anchor="middle">${escapeHtml(m.label)}</text></g>`,
    );
  }
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const color = PALETTE[i % PALETTE.length];
    const d = s.points
      .map(([x, y], j) => `${j === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`)
      .join(' ');
    parts.push(
      `<path class="series" data-series="${escapeHtml(s.name)}" data-points="${s.points.length}" d="${d}" stroke="${color}" fill="none" stroke-width="2"/>`,
    );
    for (const [x, y] of s.points)
      parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${color}"/>`);
    parts.push(
      `<text x="${width - pad.right - 4}" y="${pad.top + 12 + i * 13}" text-anchor="end" class="legend" fill="${color}">${escapeHtml(s.name)}</text>`,
    );
  });
  return `<svg id="${escapeHtml(o.id)}" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img">${parts.join('')}</svg>`;
}
