// The serving scenarios of issue 11, each a function of one served model: the concurrency sweep, a
// Poisson rate, mixed switch states, instrumented vs plain graph, long prompts joining running
// streams, and growth with prompt length. Comparisons alternate their arms and take medians.
import { medianRun, runConcurrency, runPoisson, summarize, type LoadSummary, type Target } from './load.js';
import type { ServerProcess } from './server-process.js';
import type { CompletionJob } from './stream-client.js';
import { DEFAULT_MIX, workload, type LengthMix } from './workload.js';
import { mulberry32 } from '../../test/helpers/tiny-checkpoint.js';

export interface BenchContext {
  model: string;
  target: Target;
  /** The server the bench started (absent against an external --url). */
  server?: ServerProcess;
  contextLength: number;
  outputTokens: number;
  /** Requests per concurrency level, as a multiple of the level (at least 16). */
  requestsPerLevel: number;
  repeats: number;
  /** Starts another server on the same model with these flags (absent against an external --url). */
  variant?: (flags: Record<string, string>) => Promise<ServerProcess>;
  log: (message: string) => void;
}

export interface Check {
  name: string;
  value: number;
  limit: number;
  /** Whether value must stay at or below the limit (else at or above). */
  atMost: boolean;
  met: boolean;
}

export interface ScenarioResult {
  scenario: string;
  model: string;
  rows: Record<string, number | string>[];
  checks: Check[];
}

// The switch-mix and instrumentation arms run at this concurrency (a batch the scheduler fills).
const COMPARISON_CONCURRENCY = 8;
const MIN_REQUESTS = 16;

const check = (name: string, value: number, limit: number, atMost: boolean): Check => ({ name, value, limit, atMost, met: atMost ? value <= limit : value >= limit });

function row(label: Record<string, number | string>, s: LoadSummary): Record<string, number | string> {
  return {
    ...label,
    requests: s.requests,
    errors: s.errors,
    'req/s': s.requestThroughput,
    'out tok/s': s.outputTokensPerSecond,
    'TTFT mean ms': s.ttft.mean,
    'TTFT median ms': s.ttft.median,
    'TTFT p99 ms': s.ttft.p99,
    'TPOT mean ms': s.tpot.mean,
    'TPOT median ms': s.tpot.median,
    'TPOT p99 ms': s.tpot.p99,
    'ITL mean ms': s.itl.mean,
    'ITL median ms': s.itl.median,
    'ITL p99 ms': s.itl.p99,
  };
}

function jobs(ctx: BenchContext, count: number, seed: number, mix: LengthMix = DEFAULT_MIX, extra?: (i: number) => Record<string, unknown> | undefined): CompletionJob[] {
  return workload({ count, mix, outputTokens: ctx.outputTokens, contextLength: ctx.contextLength, seed, extra });
}

export async function concurrencySweep(ctx: BenchContext, levels: number[]): Promise<ScenarioResult> {
  const rows = [];
  for (const c of levels) {
    const s = summarize(await runConcurrency(ctx.target, jobs(ctx, Math.max(MIN_REQUESTS, c * ctx.requestsPerLevel), c), c));
    if (s.firstError) ctx.log(`  concurrency ${c}: ${s.errors} errors, first: ${s.firstError}`);
    ctx.log(`  concurrency ${c}: ${s.outputTokensPerSecond.toFixed(1)} out tok/s, TTFT median ${s.ttft.median.toFixed(0)} ms, ITL median ${s.itl.median.toFixed(1)} ms`);
    rows.push({ ...row({ concurrency: c }, s), 'server peak MiB': ctx.server ? ctx.server.memory().peak / 2 ** 20 : NaN });
  }
  return { scenario: 'concurrency', model: ctx.model, rows, checks: [] };
}

export async function poissonRate(ctx: BenchContext, rate: number, count: number): Promise<ScenarioResult> {
  const s = summarize(await runPoisson(ctx.target, jobs(ctx, count, 101), rate, mulberry32(7)));
  ctx.log(`  poisson ${rate.toFixed(2)} req/s: ${s.outputTokensPerSecond.toFixed(1)} out tok/s, TTFT median ${s.ttft.median.toFixed(0)} ms`);
  return { scenario: 'poisson', model: ctx.model, rows: [row({ 'rate req/s': rate }, s)], checks: [] };
}

/** All-original batches against batches where every other request zeroes the super weights. */
export async function switchMix(ctx: BenchContext): Promise<ScenarioResult> {
  const count = Math.max(MIN_REQUESTS, COMPARISON_CONCURRENCY * ctx.requestsPerLevel);
  const arms = {
    'all original': jobs(ctx, count, 202),
    '50% super_weights off': jobs(ctx, count, 202, DEFAULT_MIX, (i) => (i % 2 === 1 ? { super_weights: 'off' } : undefined)),
  };
  const results = await alternate(ctx, arms, (armJobs) => runConcurrency(ctx.target, armJobs, COMPARISON_CONCURRENCY));
  const ratio = results['50% super_weights off']!.outputTokensPerSecond / results['all original']!.outputTokensPerSecond;
  return {
    scenario: 'switch-mix',
    model: ctx.model,
    rows: Object.entries(results).map(([arm, s]) => ({ ...row({ arm }, s), 'runs tok/s': s.throughputs.map((t) => t.toFixed(1)).join(' / ') })),
    checks: [check('mixed / all-original throughput', ratio, 0.97, false)],
  };
}

/** The same load on the instrumented graph and on a plain one (a second server). */
export async function instrumentation(ctx: BenchContext): Promise<ScenarioResult | undefined> {
  if (!ctx.variant) return undefined;
  const plain = await ctx.variant({ instrument: 'false' });
  try {
    const count = Math.max(MIN_REQUESTS, COMPARISON_CONCURRENCY * ctx.requestsPerLevel);
    const load = jobs(ctx, count, 303);
    const targets: Record<string, Target> = { instrumented: ctx.target, plain: { url: plain.url, model: plain.model } };
    const results = await alternate(ctx, { instrumented: load, plain: load }, (armJobs, arm) => runConcurrency(targets[arm]!, armJobs, COMPARISON_CONCURRENCY));
    const ratio = results.instrumented!.outputTokensPerSecond / results.plain!.outputTokensPerSecond;
    return {
      scenario: 'instrumentation',
      model: ctx.model,
      rows: Object.entries(results).map(([arm, s]) => ({ ...row({ graph: arm }, s), 'runs tok/s': s.throughputs.map((t) => t.toFixed(1)).join(' / ') })),
      checks: [check('instrumented / plain throughput', ratio, 0.97, false)],
    };
  } finally {
    await plain.stop();
  }
}

/**
 * Streams decoding steadily while long prompts arrive; the running streams' inter-token latency is
 * what chunked prefill protects. Run on the server as configured and, for contrast, on one whose step
 * budget holds a whole long prompt (no chunking).
 */
export async function longPrompts(ctx: BenchContext, streams = 4, longCount = 4): Promise<ScenarioResult> {
  const longLength = Math.min(2048, ctx.contextLength - 17);
  const streamOutput = Math.min(256, ctx.contextLength - 65);
  const measure = async (target: Target, longs = longCount): Promise<{ running: LoadSummary; long: LoadSummary }> => {
    const running = workload({ count: streams, mix: [[64, 1]], outputTokens: streamOutput, contextLength: ctx.contextLength, seed: 404 });
    const long = workload({ count: longs, mix: [[longLength, 1]], outputTokens: 16, contextLength: ctx.contextLength, seed: 405 });
    const streaming = runConcurrency(target, running, streams);
    // Let the streams reach their decode phase, then send the long prompts one after another.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const longRecords = await runConcurrency(target, long, 1);
    return { running: summarize(await streaming), long: summarize(longRecords) };
  };
  const rows: Record<string, number | string>[] = [];
  const checks: Check[] = [];
  const record = (label: string, r: { running: LoadSummary; long: LoadSummary }, targeted: boolean): void => {
    const ratio = r.running.itl.p99 / r.running.itl.median;
    ctx.log(`  long prompts (${label}): running ITL median ${r.running.itl.median.toFixed(1)} ms, p99 ${r.running.itl.p99.toFixed(1)} ms (${ratio.toFixed(2)}x)`);
    rows.push({ ...row({ server: label, requests: 'running streams' }, r.running), 'p99 / median': ratio });
    if (r.long.requests > 0) rows.push({ ...row({ server: label, requests: `long prompts (${longLength} tokens)` }, r.long), 'p99 / median': NaN });
    if (targeted) checks.push(check('running streams ITL p99 / median', ratio, 2, true));
  };
  // The machine's own noise floor: the same streams with no long prompt at all.
  record('control: no long prompts', await measure(ctx.target, 0), false);
  record('chunked prefill (as configured)', await measure(ctx.target), true);
  if (ctx.variant) {
    const unchunked = await ctx.variant({ 'max-num-batched-tokens': String(ctx.contextLength), 'max-prefill-tokens-while-decoding': String(ctx.contextLength) });
    try {
      record(`one step per prompt (budget ${ctx.contextLength})`, await measure({ url: unchunked.url, model: unchunked.model }), false);
    } finally {
      await unchunked.stop();
    }
  }
  return { scenario: 'long-prompts', model: ctx.model, rows, checks };
}

/** Output throughput, TTFT and the server's memory as prompts grow. */
export async function promptLength(ctx: BenchContext, lengths: number[], concurrency = 4): Promise<ScenarioResult> {
  const rows = [];
  for (const length of lengths.filter((l) => l + ctx.outputTokens < ctx.contextLength)) {
    const s = summarize(await runConcurrency(ctx.target, jobs(ctx, MIN_REQUESTS, length, [[length, 1]]), concurrency));
    const memory = ctx.server?.memory();
    ctx.log(`  prompt ${length}: ${s.outputTokensPerSecond.toFixed(1)} out tok/s, TTFT median ${s.ttft.median.toFixed(0)} ms`);
    rows.push({ ...row({ 'prompt tokens': length }, s), 'server RSS MiB': memory ? memory.rss / 2 ** 20 : NaN, 'server peak MiB': memory ? memory.peak / 2 ** 20 : NaN });
  }
  return { scenario: 'prompt-length', model: ctx.model, rows, checks: [] };
}

/** Runs each arm `ctx.repeats` times, arms alternating, and keeps each arm's median run. */
async function alternate<A extends string>(
  ctx: BenchContext,
  arms: Record<A, CompletionJob[]>,
  run: (jobs: CompletionJob[], arm: A) => Promise<Parameters<typeof summarize>[0]>,
): Promise<Record<A, ReturnType<typeof medianRun>>> {
  const runs = Object.fromEntries(Object.keys(arms).map((a) => [a, [] as LoadSummary[]])) as Record<A, LoadSummary[]>;
  for (let r = 0; r < ctx.repeats; r++) {
    for (const arm of Object.keys(arms) as A[]) {
      const s = summarize(await run(arms[arm], arm));
      runs[arm].push(s);
      ctx.log(`  ${arm} run ${r + 1}: ${s.outputTokensPerSecond.toFixed(1)} out tok/s${s.errors ? `, ${s.errors} errors (${s.firstError})` : ''}`);
    }
  }
  return Object.fromEntries(Object.entries(runs).map(([a, list]) => [a, medianRun(list as LoadSummary[])])) as Record<A, ReturnType<typeof medianRun>>;
}
