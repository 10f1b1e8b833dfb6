// What the reliability suite shares: the demo model served by `swserve serve` in a child process (so
// signals and crashes are real), plain HTTP exchanges that never throw, the server's own figures read
// from /metrics, the check that an answer is a documented one, and a way to print each figure.
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { ApiError, type ApiErrorCode } from '../src/http/errors.js';
import { spawnServer, type ChildServer } from '../test/helpers/child-server.js';
import { ALL_ERROR_CODES } from '../test/helpers/error-codes.js';
import { metricValue } from '../test/telemetry/metrics-text.js';

export const DEMO_MODEL_DIR = fileURLToPath(new URL('../../models/demo', import.meta.url));
export const MODEL = 'demo';

/** The demo model served with the default config/server.json and these flags. */
export function startDemoServer(flags: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  return spawnServer(['--model', DEMO_MODEL_DIR, ...flags], env);
}

/** One figure for the closing note, printed as `figure: <name> = <value>`. */
export function figure(name: string, value: string | number): void {
  console.log(`figure: ${name} = ${value}`);
}

export const MIB = 1024 * 1024;

export interface Exchange {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface Sent {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/** One request on its own connection; resolves with the answer, or with the connection error. */
export function exchange(url: string, request: Sent): Promise<Exchange | { error: string }> {
  return new Promise((resolve) => {
    const req = http.request(`${url}${request.path}`, { method: request.method ?? 'POST', headers: request.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (err) => resolve({ error: err.message }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    req.end(request.body);
  });
}

/** A JSON POST to the API. */
export function postJson(url: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Exchange | { error: string }> {
  return exchange(url, { path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}


/**
 * Why a status and body are not a documented client error (a 4xx in the OpenAI envelope whose code
 * the catalogue sends with that status and type), or undefined when they are one.
 */
export function envelopeProblem(status: number, body: string): string | undefined {
  if (status < 400 || status >= 500) return `status ${status} is not a 4xx`;
  let error: Record<string, unknown> | undefined;
  try {
    error = (JSON.parse(body) as { error?: Record<string, unknown> }).error;
  } catch {
    return `${status} with a body that is not JSON: ${body.slice(0, 200)}`;
  }
  if (!error || Object.keys(error).sort().join() !== 'code,message,param,type') return `${status} without the envelope: ${body.slice(0, 200)}`;
  const code = error.code as ApiErrorCode;
  if (!Object.hasOwn(ALL_ERROR_CODES, code)) return `${status} with an unknown code ${String(code)}`;
  const expected = new ApiError(code, '').toJSON().error;
  if (new ApiError(code, '').status !== status || expected.type !== error.type) return `${code} came with ${status} ${String(error.type)}`;
  if (typeof error.message !== 'string' || error.message === '') return `${code} without a message`;
  return undefined;
}

/** A series from /metrics (undefined when absent). */
export async function serverMetric(url: string, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const res = await exchange(url, { method: 'GET', path: '/metrics' });
  if ('error' in res || res.status !== 200) throw new Error(`/metrics did not answer: ${JSON.stringify(res)}`);
  return metricValue(res.body.toString('utf8'), name, labels);
}

/** The server process's resident memory, as it reports it. */
export async function rssBytes(url: string): Promise<number> {
  const rss = await serverMetric(url, 'process_resident_memory_bytes');
  if (rss === undefined) throw new Error('the server reports no process_resident_memory_bytes');
  return rss;
}

/** The greedy completion whose text must not change across a run. */
export async function greedyText(url: string): Promise<string> {
  const res = await postJson(url, '/v1/completions', { model: MODEL, prompt: 'The city of', max_tokens: 24, temperature: 0 });
  if ('error' in res || res.status !== 200) throw new Error(`the greedy request failed: ${'error' in res ? res.error : `${res.status} ${res.body.toString()}`}`);
  return (JSON.parse(res.body.toString('utf8')) as { choices: { text: string }[] }).choices[0]!.text;
}

export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await condition())) {
    if (Date.now() - started > timeoutMs) throw new Error(`no ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - started;
}

export function sseEvents(text: string): string[] {
  return text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice('data: '.length));
}
