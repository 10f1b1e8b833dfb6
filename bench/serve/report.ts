// bench:serve's results: one JSON file with everything, a markdown table per scenario (what the README
// quotes) and an SVG of throughput and latency against concurrency, in bench/results/.
import fs from 'node:fs';
import path from 'node:path';
import { renderFigure, type Series } from '../../src/superweights/charts/line-chart.js';
import type { ScenarioResult } from './scenarios.js';

export interface RunHeader {
  date: string;
  machine: string;
  command: string;
  models: Record<string, string>;
}

const COLORS = ['#c0392b', '#2c3e50', '#27ae60', '#8e44ad', '#d35400'];

export function writeReport(dir: string, header: RunHeader, results: ScenarioResult[]): { json: string; markdown: string; svg: string } {
  fs.mkdirSync(dir, { recursive: true });
  const stem = path.join(dir, `serve-${header.date.replace(/[:.]/g, '-')}`);
  const files = { json: `${stem}.json`, markdown: `${stem}.md`, svg: `${stem}.svg` };
  fs.writeFileSync(files.json, `${JSON.stringify({ ...header, results }, null, 2)}\n`);
  fs.writeFileSync(files.markdown, markdown(header, results));
  fs.writeFileSync(files.svg, chart(results));
  return files;
}

export function markdown(header: RunHeader, results: ScenarioResult[]): string {
  const lines = [
    `# bench:serve ${header.date}`,
    '',
    `Machine: ${header.machine}. Command: \`${header.command}\`.`,
    '',
    ...Object.entries(header.models).map(([name, what]) => `- ${name}: ${what}`),
    '',
  ];
  for (const r of results) {
    lines.push(`## ${r.scenario}: ${r.model}`, '');
    const columns = [...new Set(r.rows.flatMap((row) => Object.keys(row)))];
    lines.push(`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`);
    for (const row of r.rows) lines.push(`| ${columns.map((c) => cell(row[c])).join(' | ')} |`);
    for (const c of r.checks) lines.push('', `Target ${c.name} ${c.atMost ? '<=' : '>='} ${c.limit}: ${c.value.toFixed(3)} (${c.met ? 'met' : 'missed'}).`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

function cell(value: number | string | undefined): string {
  if (value === undefined) return '';
  if (typeof value === 'string') return value;
  if (Number.isNaN(value)) return '-';
  return Math.abs(value) >= 100 || Number.isInteger(value) ? value.toFixed(0) : value.toFixed(value >= 10 ? 1 : 2);
}

function chart(results: ScenarioResult[]): string {
  const sweeps = results.filter((r) => r.scenario === 'concurrency');
  const series = (column: string, suffix = '', dash?: Series['dash']): Series[] =>
    sweeps.map((r, i) => ({
      name: `${r.model}${suffix}`,
      color: COLORS[i % COLORS.length]!,
      dash,
      markers: true,
      points: r.rows.map((row) => [row.concurrency as number, row[column] as number] as [number, number]),
    }));
  return renderFigure('swserve bench:serve: streaming /v1/completions against concurrency', [
    { title: 'output throughput', xLabel: 'concurrent requests', yLabel: 'output tokens / s', logY: true, series: series('out tok/s') },
    { title: 'time to first token (median)', xLabel: 'concurrent requests', yLabel: 'ms', logY: true, series: series('TTFT median ms') },
    { title: 'inter-token latency', xLabel: 'concurrent requests', yLabel: 'ms', logY: true, series: [...series('ITL median ms', ' median'), ...series('ITL p99 ms', ' p99', 'dashed')] },
  ]);
}
