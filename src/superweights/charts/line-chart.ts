// A small hand-written SVG line chart (no plotting library): panels side by side, each with axes,
// ticks, a legend and any number of series on a linear or log10 y axis.

export interface Series {
  name: string;
  points: [number, number][];
  color: string;
  dash?: 'dashed' | 'dotted';
  /** Draw a dot at each point. */
  markers?: boolean;
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logY?: boolean;
  /** Text placed at data points, e.g. the coordinates of a super weight. */
  labels?: { x: number; y: number; text: string }[];
}

const PANEL_WIDTH = 480;
const PANEL_HEIGHT = 372;
const MARGIN = { left: 64, right: 16, top: 36, bottom: 80 };
// Legend rows start this far below the plot.
const LEGEND_TOP = 46;
const TITLE_HEIGHT = 34;
const DASHES = { dashed: '6 4', dotted: '2 3' };
const LEGEND_SWATCH = 22;
const TICK_TARGET = 5;
// Approximate width of a 12px Helvetica character, to size the legend box.
const LEGEND_CHAR_WIDTH = 6.6;

export function renderFigure(title: string, panels: Panel[], panelWidth = PANEL_WIDTH): string {
  const width = panelWidth * panels.length;
  const height = PANEL_HEIGHT + TITLE_HEIGHT;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...panels.map((p, i) => `<g transform="translate(${i * panelWidth},${TITLE_HEIGHT})">${renderPanel(p, panelWidth)}</g>`),
    '</svg>',
    '',
  ].join('\n');
}

function renderPanel(panel: Panel, width: number): string {
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const all = panel.series.flatMap((s) => s.points);
  const ty = (v: number): number => (panel.logY ? Math.log10(Math.max(v, Number.MIN_VALUE)) : v);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => ty(p[1])).filter(Number.isFinite);
  const [x0, x1] = padRange(Math.min(...xs), Math.max(...xs), 0, 0);
  // Extra room on top for point labels.
  const [y0, y1] = padRange(Math.min(...ys), Math.max(...ys), 0.08, 0.15);
  const px = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number): number => MARGIN.top + plotH - ((ty(y) - y0) / (y1 - y0)) * plotH;
  const out: string[] = [];
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="13">${escapeXml(panel.title)}</text>`);
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  for (const t of linearTicks(x0, x1)) {
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}" stroke="#444"/>`);
    out.push(`<text x="${px(t)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle">${formatTick(t)}</text>`);
  }
  const yTicks = panel.logY ? logTicks(y0, y1) : linearTicks(y0, y1);
  for (const t of yTicks) {
    const y = py(panel.logY ? 10 ** t : t);
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${y + 4}" text-anchor="end">${formatTick(panel.logY ? 10 ** t : t)}</text>`);
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH + 32}" text-anchor="middle">${escapeXml(panel.xLabel)}</text>`);
  out.push(`<text transform="translate(16,${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(panel.yLabel + (panel.logY ? ' (log scale)' : ''))}</text>`);
  for (const s of panel.series) {
    const d = s.points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ');
    const dash = s.dash ? ` stroke-dasharray="${DASHES[s.dash]}"` : '';
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    if (s.markers) for (const [x, y] of s.points) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
  }
  for (const l of panel.labels ?? []) {
    out.push(`<text x="${px(l.x) + 6}" y="${py(l.y) - 6}" font-size="11" fill="#222">${escapeXml(l.text)}</text>`);
  }
  // The legend sits under the x-axis label, wrapping onto a second row when the names are long.
  let lx = MARGIN.left;
  let ly = PANEL_HEIGHT - MARGIN.bottom + LEGEND_TOP;
  for (const s of panel.series) {
    const itemW = LEGEND_SWATCH + 18 + LEGEND_CHAR_WIDTH * s.name.length;
    if (lx + itemW > MARGIN.left + plotW && lx > MARGIN.left) {
      lx = MARGIN.left;
      ly += 16;
    }
    const dash = s.dash ? ` stroke-dasharray="${DASHES[s.dash]}"` : '';
    out.push(`<line x1="${lx}" x2="${lx + LEGEND_SWATCH}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(`<text x="${lx + LEGEND_SWATCH + 5}" y="${ly}">${escapeXml(s.name)}</text>`);
    lx += itemW;
  }
  return out.join('\n');
}

function padRange(lo: number, hi: number, below: number, above: number): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (hi - lo < 1e-9) return [lo - 0.5, hi + 0.5];
  return [lo - (hi - lo) * below, hi + (hi - lo) * above];
}

/** About five round ticks (1, 2 or 5 times a power of ten apart) inside [lo, hi]. */
function linearTicks(lo: number, hi: number): number[] {
  const raw = (hi - lo) / TICK_TARGET;
  const power = 10 ** Math.floor(Math.log10(raw));
  const steps = [1, 2, 5, 10].map((m) => m * power);
  const step = steps.reduce((best, s) => (Math.abs((hi - lo) / s - TICK_TARGET) < Math.abs((hi - lo) / best - TICK_TARGET) ? s : best));
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** log10 positions of 1, 2, 5 x 10^k inside [lo, hi], thinned to powers of ten when there are many. */
function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) {
    for (const m of [1, 2, 5]) {
      const t = k + Math.log10(m);
      if (t >= lo && t <= hi) ticks.push(t);
    }
  }
  const decades = ticks.filter((t) => Number.isInteger(t));
  if (ticks.length > 8 && decades.length >= 2) return decades;
  // A range narrower than 1-2-5 steps: round values, placed on the log axis.
  return ticks.length >= 2 ? ticks : linearTicks(10 ** lo, 10 ** hi).filter((t) => t > 0).map(Math.log10);
}

/** Ticks are round numbers: six significant digits print them exactly (112.5, not 113). */
function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(0);
  return Number(v.toPrecision(6)).toString();
}

export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', '"': 'quot', "'": 'apos' }[c]!};`);
}
