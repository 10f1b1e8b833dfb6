// A strict reader of the Prometheus text exposition format (0.0.4) for tests: every line must be a
// comment, a HELP/TYPE line or a well-formed sample of a declared family, or it throws. Families
// keep their samples with labels, so histograms with labels stay apart.

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The series name as stored (x_bucket, x_sum, ...). */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set<string>(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<MetricType, string[]> = { counter: [''], gauge: [''], untyped: [''], histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] };

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const helps = new Map<string, string>();
  text.split('\n').forEach((line, i) => {
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${line}`);
    };
    if (line.trim() === '') return;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ''] = meta;
      if (!METRIC_NAME.test(name!)) fail('bad metric name');
      if (kind === 'HELP') helps.set(name!, rest);
      else if (!TYPES.has(rest) || families.has(name!)) fail('bad or repeated TYPE');
      else families.set(name!, { name: name!, type: rest as MetricType, help: helps.get(name!) ?? '', samples: [] });
      return;
    }
    if (line.startsWith('#')) return;
    const sample = parseSample(line, fail);
    const family = [...families.values()].find((f) => SUFFIXES[f.type].some((s) => f.name + s === sample.name));
    if (!family) fail('sample of an undeclared family');
    if (family!.type === 'histogram' && sample.name.endsWith('_bucket') && sample.labels.le === undefined) fail('bucket without le');
    family!.help ||= helps.get(family!.name) ?? '';
    family!.samples.push(sample);
  });
  return families;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const nameEnd = line.search(/[{ ]/);
  if (nameEnd <= 0) fail('no sample value');
  const name = line.slice(0, nameEnd);
  if (!METRIC_NAME.test(name)) fail('bad metric name');
  const labels: Record<string, string> = {};
  let at = nameEnd;
  if (line[at] === '{') {
    at++;
    while (line[at] !== '}') {
      const eq = line.indexOf('="', at);
      if (eq < 0) fail('bad label');
      const label = line.slice(at, eq);
      if (!LABEL_NAME.test(label) || label in labels) fail(`bad or repeated label ${label}`);
      let value = '';
      for (at = eq + 2; line[at] !== '"'; at++) {
        if (at >= line.length) fail('unterminated label value');
        if (line[at] === '\\') {
          const escaped = line[++at];
          value += escaped === 'n' ? '\n' : escaped === '\\' || escaped === '"' ? escaped : fail('bad escape');
        } else {
          value += line[at];
        }
      }
      labels[label] = value;
      at++;
      if (line[at] === ',') at++;
      else if (line[at] !== '}') fail('expected , or }');
    }
    at++;
  }
  const fields = line.slice(at).trim().split(/\s+/);
  if (fields.length < 1 || fields.length > 2 || line[at] !== ' ') fail('expected " value [timestamp]"');
  const value = parseValue(fields[0]!);
  if (value === undefined) fail('bad value');
  return { name, labels, value: value! };
}

function parseValue(text: string): number | undefined {
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  // prom-client writes NaN as "Nan" (an event-loop lag mean with no sample since the last scrape);
  // Prometheus reads special values case-insensitively, so both spellings are valid.
  if (text.toLowerCase() === 'nan') return NaN;
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : undefined;
}

export async function fetchMetrics(baseUrl: string): Promise<{ text: string; contentType: string; families: Map<string, Family> }> {
  const res = await fetch(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const text = await res.text();
  return { text, contentType: res.headers.get('content-type') ?? '', families: parsePrometheusText(text) };
}

/** Every series name Prometheus stores from these families (a histogram x as x_bucket, x_sum, x_count). */
export function storedSeriesNames(families: Map<string, Family>): Set<string> {
  return new Set([...families.values()].flatMap((f) => SUFFIXES[f.type].map((s) => f.name + s)));
}

/**
 * The value of one series (name and exactly these labels) in an exposition text, or undefined. Reads
 * only that series' lines, so a value elsewhere that the strict reader refuses does not hide it.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    const keys = Object.keys(found);
    if (keys.length === Object.keys(labels).length && keys.every((k) => found[k] === labels[k])) return Number(match[3]);
  }
  return undefined;
}
