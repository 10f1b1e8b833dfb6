// The peers run the same model swserve runs: on tiny checkpoints built by the tests' helper (byte
// tokenizer) and on models/demo (byte-level BPE with merges), llama.cpp's greedy tokens from our F32 GGUF
// equal swserve's and its next-token log-probabilities agree within the tolerances below, Q8_0 stays
// close, llama.cpp tokenizes text as swserve does, and Transformers.js on our Optimum export generates
// swserve's greedy tokens. Needs the peers (install-peers.sh), so it is a script, not part of npm test.
// Usage: npm run bench:peers:check -- [--peers-dir DIR]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { logSoftmax } from '../../src/engine/sampler.js';
import { loadTokenizer } from '../../src/engine/tokenizer.js';
import { exportOptimumOnnx } from '../../test/helpers/optimum-export.js';
import { openHarness } from '../../test/helpers/engine-harness.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../../test/helpers/tiny-checkpoint.js';
import { convertToGguf } from './convert-to-gguf.js';
import type { GgmlType } from './ggml-blocks.js';
import { LlamaCppPeer, llamaCppLogProbs, loadLlama, type LlamaContextSettings } from './llama-cpp-peer.js';
import type { PeerEngine } from './peer-engine.js';
import { SwservePeer } from './swserve-peer.js';
import { TransformersPeer } from './transformers-peer.js';

// Float32 everywhere (F32 weights, F32 KV cache, no flash attention): only summation order differs, and
// float32 rounding over these small dot products stays near 1e-6 (measured: 8e-7).
const STRICT_LOGPROB_TOLERANCE = 1e-4;
// llama.cpp's defaults keep K and V in float16 and use flash attention, which on CPU also rounds Q and the
// V accumulation to float16: a few roundings of 2^-11 = 4.9e-4 relative each, so log-probabilities move in
// proportion to their spread. Allowed: 2e-3 (about four float16 ulps) of each position's log-prob spread
// (measured: 1e-4 to 3e-4 of it).
const DEFAULT_RELATIVE_TOLERANCE = 2e-3;
// Q8_0 rounds weights to 8 bits per 32-element block (and llama.cpp quantizes activations to Q8_0 for the
// dot products): a mean KL from float32 below 1e-3 nats per token is "close" at this size.
const Q8_0_MEAN_KL_TOLERANCE = 1e-3;
const GENERATED = 24;
const THREADS = 2;
const STRICT: Partial<LlamaContextSettings> = { kvCacheType: 'F32', flashAttention: false };

const TINY: [string, TinyModelSpec][] = [
  ['tiny llama, GQA 4/2, 259-id vocabulary', { arch: 'llama', hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, vocabSize: 259, seed: 3 }],
  ['tiny llama, tied embeddings, llama3 RoPE scaling', { arch: 'llama', hiddenSize: 64, intermediateSize: 160, numLayers: 3, numHeads: 2, tieEmbeddings: true, seed: 4, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 } }],
];

let failures = 0;
function check(ok: boolean, what: string): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

async function greedy(engine: PeerEngine, prompts: number[][]): Promise<number[][]> {
  await engine.load();
  try {
    return await engine.generate(prompts, GENERATED);
  } finally {
    await engine.close();
  }
}

interface Agreement {
  /** Max |log p - log q| over positions and tokens. */
  maxDiff: number;
  /** Max over positions of that position's max |log p - log q| / (max log p - min log p). */
  maxRelativeDiff: number;
  /** Mean KL(p || q) per position, p being swserve's. */
  meanKl: number;
}

function compare(p: Float32Array[], q: Float64Array[]): Agreement {
  let maxDiff = 0;
  let maxRelativeDiff = 0;
  let kl = 0;
  p.forEach((lp, i) => {
    const lq = q[i]!;
    let positionDiff = 0;
    for (let t = 0; t < lp.length; t++) {
      positionDiff = Math.max(positionDiff, Math.abs(lp[t]! - lq[t]!));
      kl += Math.exp(lp[t]!) * (lp[t]! - lq[t]!);
    }
    const spread = Math.max(...lp) - Math.min(...lp);
    maxDiff = Math.max(maxDiff, positionDiff);
    maxRelativeDiff = Math.max(maxRelativeDiff, positionDiff / spread);
  });
  return { maxDiff, maxRelativeDiff, meanKl: kl / p.length };
}

/**
 * Whether `tokens` follow swserve's greedy `reference`, allowing a different pick only at a near-tie: a
 * position where swserve's top two log-probabilities are closer than twice the measured disagreement
 * (either engine may then be "right"; after it the sequences are no longer comparable).
 */
function greedyAgreement(tokens: number[][], reference: number[][], swserve: Float32Array[][], promptLengths: number[], maxDiff: number): { ok: boolean; text: string } {
  for (let r = 0; r < reference.length; r++) {
    const i = reference[r]!.findIndex((t, k) => t !== tokens[r]![k]);
    if (i < 0) continue;
    const lp = [...swserve[r]![promptLengths[r]! - 1 + i]!].sort((a, b) => b - a);
    const gap = lp[0]! - lp[1]!;
    const tie = gap < 2 * maxDiff;
    return { ok: tie, text: `greedy equal until request ${r} token ${i}, where swserve's top-2 gap is ${gap.toExponential(2)} (${tie ? 'a near-tie within the measured difference' : 'NOT a tie'})` };
  }
  return { ok: true, text: 'greedy equal' };
}

async function checkModel(label: string, dir: string, prompts: number[][], peersDir: string | undefined, work: string): Promise<void> {
  console.log(`\n${label} (${dir})`);
  const settings = { threads: THREADS, maxBatch: prompts.length, maxPromptTokens: Math.max(...prompts.map((p) => p.length)) };
  const reference = await greedy(new SwservePeer({ modelDir: dir, instrument: true, ...settings }), prompts);
  const vocabSize = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  // swserve's log-probabilities along its own greedy path, every prompt position then each cached decode step.
  const harness = await openHarness(dir);
  const swserve: Float32Array[][] = [];
  try {
    for (const [r, prompt] of prompts.entries()) {
      const run = await harness.run(prompt, reference[r]!.slice(0, -1));
      swserve.push([...run.prefill, ...run.decode].map(logSoftmax));
    }
  } finally {
    await harness.release();
  }
  const promptLengths = prompts.map((p) => p.length);
  const contextSize = settings.maxPromptTokens + GENERATED;
  for (const type of ['F32', 'F16', 'Q8_0', 'Q4_0'] as GgmlType[]) {
    const gguf = path.join(work, `${path.basename(dir)}-${type}.gguf`);
    convertToGguf(dir, gguf, type);
    for (const [mode, extra] of type === 'F32' ? ([['strict float32', STRICT], ['llama.cpp defaults', {}]] as const) : ([['llama.cpp defaults', {}]] as const)) {
      const tokens = await greedy(new LlamaCppPeer({ ggufPath: gguf, label: type, threads: THREADS, maxBatch: prompts.length, contextSize, peersDir, ...extra }), prompts);
      const llama: Float64Array[] = [];
      for (const [r, prompt] of prompts.entries()) llama.push(...(await llamaCppLogProbs(gguf, vocabSize, prompt, reference[r]!.slice(0, -1), { threads: THREADS, contextSize, peersDir, ...extra })));
      const { maxDiff, maxRelativeDiff, meanKl } = compare(swserve.flat(), llama);
      const agreement = greedyAgreement(tokens, reference, swserve, promptLengths, maxDiff);
      const what = `llama.cpp ${type} (${mode}): ${agreement.text}; max |log p diff| ${maxDiff.toExponential(2)} (${maxRelativeDiff.toExponential(2)} of the spread), mean KL ${meanKl.toExponential(2)} over ${llama.length} positions`;
      if (type === 'F32') check(agreement.ok && (mode === 'strict float32' ? maxDiff < STRICT_LOGPROB_TOLERANCE : maxRelativeDiff < DEFAULT_RELATIVE_TOLERANCE), what);
      else if (type === 'Q8_0') check(meanKl < Q8_0_MEAN_KL_TOLERANCE, what);
      else console.log(`info ${what}`);
    }
  }
  const exported = exportOptimumOnnx(dir, path.join(work, `${path.basename(dir)}-optimum`));
  const tjs = await greedy(new TransformersPeer({ exportDir: exported.dir, threads: THREADS, peersDir }), prompts);
  check(tjs.every((t, r) => t.every((x, i) => x === reference[r]![i])), `transformers.js on the Optimum export: greedy tokens equal swserve's (${prompts.length} prompts x ${GENERATED})`);
}

/** llama.cpp's tokenizer, read from our GGUF, splits text into the ids swserve's tokenizer gives. */
async function checkTokenizer(dir: string, texts: string[], peersDir: string | undefined, work: string): Promise<void> {
  const gguf = path.join(work, 'tokenizer-check.gguf');
  convertToGguf(dir, gguf, 'F32');
  const llama = await loadLlama(peersDir, THREADS);
  const model = await llama.loadModel({ modelPath: gguf });
  const swserve = await loadTokenizer(dir);
  for (const text of texts) {
    const ours = swserve.encode(text, { addSpecialTokens: false });
    const theirs = model.tokenize(text);
    check(ours.length === theirs.length && ours.every((t, i) => t === theirs[i]), `tokenizer: ${JSON.stringify(text)} -> ${ours.length} tokens both ways`);
  }
  await model.dispose();
  await llama.dispose();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { 'peers-dir': { type: 'string' } } });
  const peersDir = values['peers-dir'];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-peers-check-'));
  try {
    for (const [label, spec] of TINY) {
      const dir = path.join(work, label.replace(/\W+/g, '-'));
      const ckpt = buildTinyCheckpoint(dir, spec);
      const prompts = ['The cat sat on the', 'Hello'].map((text) => [ckpt.bosId, ...Buffer.from(text)]);
      await checkModel(label, dir, prompts, peersDir, work);
    }
    const demo = 'models/demo';
    if (fs.existsSync(path.join(demo, 'model.safetensors'))) {
      const tokenizer = await loadTokenizer(demo);
      await checkTokenizer(demo, ['The city of Paris is the capital of France.', "  Don't stop: 1,234 résumés!\n\nNew line"], peersDir, work);
      await checkModel('models/demo (byte-level BPE, 4096 tokens)', demo, ['The city of', 'Once upon a time'].map((t) => tokenizer.encode(t)), peersDir, work);
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  console.log(failures === 0 ? '\nall peer checks passed' : `\n${failures} peer check(s) failed`);
  process.exit(failures === 0 ? 0 : 1);
}

void main();
