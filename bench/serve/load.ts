// Load shapes of `vllm bench serve`: a fixed number of requests in flight, or a Poisson arrival rate;
// and the figures it reports (request and output-token throughput, TTFT, TPOT, ITL, end to end).
import { streamCompletion, type CompletionJob, type RequestRecord } from './stream-client.js';

export interface Target {
  url: string;
  model: string;
}

export interface Stats {
  mean: number;
  median: number;
  p99: number;
}

export interface LoadSummary {
  requests: number;
  errors: number;
  /** Seconds from the first send to the last [DONE]. */
  duration: number;
  requestThroughput: number;
  outputTokensPerSecond: number;
  /** Milliseconds. */
  ttft: Stats;
  tpot: Stats;
  itl: Stats;
  e2e: Stats;
  firstError?: string;
}

/** Keeps `concurrency` requests in flight until every job has run. */
export async function runConcurrency(target: Target, jobs: readonly CompletionJob[], concurrency: number): Promise<RequestRecord[]> {
  const started = performance.now();
  const records: RequestRecord[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < jobs.length) records.push(await streamCompletion(target.url, target.model, jobs[next++]!, started));
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, jobs.length) }, lane));
  return records;
}

/** Sends the jobs at exponentially distributed gaps (a Poisson process of `rate` requests per second). */
export async function runPoisson(target: Target, jobs: readonly CompletionJob[], rate: number, random: () => number): Promise<RequestRecord[]> {
  const started = performance.now();
  const pending: Promise<RequestRecord>[] = [];
  for (const job of jobs) {
    pending.push(streamCompletion(target.url, target.model, job, started));
    await new Promise((resolve) => setTimeout(resolve, (-Math.log(1 - random()) / rate) * 1000));
  }
  return Promise.all(pending);
}

export function summarize(records: readonly RequestRecord[]): LoadSummary {
  const ok = records.filter((r) => !r.error);
  const ms = (values: number[]): Stats => stats(values.map((v) => v * 1000));
  const duration = Math.max(...records.map((r) => r.start + r.e2e)) - Math.min(...records.map((r) => r.start));
  const output = ok.reduce((a, r) => a + r.outputTokens, 0);
  return {
    requests: records.length,
    errors: records.length - ok.length,
    duration,
    requestThroughput: ok.length / duration,
    outputTokensPerSecond: output / duration,
    ttft: ms(ok.map((r) => r.ttft)),
    tpot: ms(ok.filter((r) => r.outputTokens > 1).map((r) => (r.e2e - r.ttft) / (r.outputTokens - 1))),
    itl: ms(ok.flatMap((r) => r.itl)),
    e2e: ms(ok.map((r) => r.e2e)),
    firstError: records.find((r) => r.error)?.error,
  };
}

export function stats(values: readonly number[]): Stats {
  if (values.length === 0) return { mean: NaN, median: NaN, p99: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  return { mean: sorted.reduce((a, b) => a + b, 0) / sorted.length, median: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
}

/** Linear interpolation between closest ranks, as numpy's default percentile. */
export function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** The median of several runs' summaries (by output throughput), with the spread of that figure. */
export function medianRun(runs: readonly LoadSummary[]): LoadSummary & { runs: number; throughputs: number[] } {
  const sorted = [...runs].sort((a, b) => a.outputTokensPerSecond - b.outputTokensPerSecond);
  return { ...sorted[Math.floor(sorted.length / 2)]!, runs: runs.length, throughputs: runs.map((r) => r.outputTokensPerSecond) };
}
