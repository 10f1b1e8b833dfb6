// Runs one engine in a child process of its own, so its load time and memory are its alone: the parent
// calls runEngineProcess(job, batches), the child (this file as the entry point) loads, warms up, times
// one generate call per batch size and prints its result as the last line of stdout.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createEngine, type EngineJob } from './engines.js';
import { timeGeneration, type GenerationTiming } from './peer-engine.js';

export interface BatchResult extends Omit<GenerationTiming, 'tokens'> {
  batch: number;
  tokens: number[][];
}

export interface EngineProcessResult {
  engine: string;
  name: string;
  loadMs: number;
  rssAfterLoadBytes: number;
  /** The process's peak resident set (getrusage maxrss), load and generation included. */
  peakRssBytes: number;
  batches: BatchResult[];
}

const RESULT_PREFIX = 'ENGINE_RESULT ';
const WARM_UP_TOKENS = 4;

/** Deterministic prompts of `length` token ids, BOS first, one per request, each a little different. */
export function benchPrompts(count: number, length: number, bosId: number): number[][] {
  return Array.from({ length: count }, (_, r) => [bosId, ...Array.from({ length: length - 1 }, (_, i) => 65 + ((i + 7 * r) % 26))]);
}

async function childMain(job: EngineJob, batches: number[], promptLength: number, bosId: number): Promise<EngineProcessResult> {
  const engine = createEngine(job);
  const start = performance.now();
  await engine.load();
  const loadMs = performance.now() - start;
  const rssAfterLoadBytes = process.memoryUsage().rss;
  // Kernel selection and allocators settle on a short run first, as in bench/engine-bench.ts.
  await engine.generate(benchPrompts(1, promptLength, bosId), WARM_UP_TOKENS);
  const results: BatchResult[] = [];
  for (const batch of batches) {
    const timing = await timeGeneration(engine, benchPrompts(batch, promptLength, bosId), job.settings.maxTokens);
    results.push({ batch, ...timing });
  }
  await engine.close();
  return { engine: job.engine, name: engine.name, loadMs, rssAfterLoadBytes, peakRssBytes: process.resourceUsage().maxRSS * 1024, batches: results };
}

/** Spawns a fresh Node process for `job` and resolves with what it measured. */
export function runEngineProcess(job: EngineJob, batches: number[], promptLength: number, bosId: number): Promise<EngineProcessResult> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [self, JSON.stringify({ job, batches, promptLength, bosId })], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
      if (code !== 0 || !line) return reject(new Error(`${job.engine} process exited with ${code}: ${stdout.slice(-2000)}`));
      resolve(JSON.parse(line.slice(RESULT_PREFIX.length)) as EngineProcessResult);
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { job, batches, promptLength, bosId } = JSON.parse(process.argv[2]!) as { job: EngineJob; batches: number[]; promptLength: number; bosId: number };
  childMain(job, batches, promptLength, bosId).then(
    (result) => {
      process.stdout.write(`${RESULT_PREFIX}${JSON.stringify(result)}\n`);
      // node-llama-cpp and onnxruntime keep native threads; the measurement is done.
      process.exit(0);
    },
    (err: Error) => {
      process.stderr.write(`${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  );
}
