// Random Llama checkpoints the benchmarks measure, by name, written once into a cache folder
// ($SWSERVE_BENCH_MODELS, else ~/.cache/swserve/bench/models) and reused while their spec is unchanged.
// They are streamed to disk tensor by tensor (writeTinyCheckpoint), so building the 1B shape needs
// memory for a few of its largest tensors (67 MB each): 227 MB peak RSS measured, not the 3.9 GB model.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeTinyCheckpoint, type TinyModelSpec } from '../test/helpers/tiny-checkpoint.js';

// The 1B shape is 3.9 GB: a user cache, not the repository or a temp folder that is cleared.
export const DEFAULT_MODEL_CACHE = path.join(os.homedir(), '.cache', 'swserve', 'bench', 'models');

export const MODEL_SHAPES: Record<string, TinyModelSpec> = {
  // ~24M parameters with the 259-id byte vocabulary (8 x 512, GQA 8/4).
  'llama-25m': { arch: 'llama', hiddenSize: 512, intermediateSize: 1408, numLayers: 8, numHeads: 8, numKvHeads: 4, vocabSize: 259, maxPositionEmbeddings: 2048, seed: 1 },
  // Issue 2's ~100M benchmark shape (12 x 768, GQA 12/4, 8192 vocabulary: 88M parameters).
  'random-100m': { arch: 'llama', hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 2048, seed: 1 },
  // A demo-sized stand-in for when models/demo has not been trained.
  'random-demo-size': { arch: 'llama', hiddenSize: 256, intermediateSize: 768, numLayers: 6, numHeads: 8, numKvHeads: 4, vocabSize: 4096, maxPositionEmbeddings: 1024, seed: 1 },
  // Llama-3.2-1B's shape (2048 x 16, GQA 32/8, intermediate 8192, RoPE base 500000, tied embeddings)
  // with the byte vocabulary instead of 128k tokens: 0.97B parameters, 3.9 GB in float32.
  // Issue 9's memory statement: a 32k vocabulary and a 4k context on a small body.
  'random-32k-vocab': { arch: 'llama', hiddenSize: 256, intermediateSize: 768, numLayers: 4, numHeads: 8, numKvHeads: 4, vocabSize: 32000, maxPositionEmbeddings: 4096, seed: 1 },
  'llama-1b': { arch: 'llama', hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, vocabSize: 259, maxPositionEmbeddings: 2048, ropeTheta: 500000, tieEmbeddings: true, seed: 1 },
};

const COMPLETE_MARKER = '.complete';

// Random shapes have no super weight of their own; switch requests ("off", a scale) need one declared.
// Within every shape above (layer 1, row 7 < hidden, column 33 < intermediate).
const DECLARED_SUPER_WEIGHT = { layer: 1, row: 7, col: 33 };

/** A `--super-weights` file declaring DECLARED_SUPER_WEIGHT, for servers on the random shapes. */
export function declaredSuperWeightsFile(): string {
  const file = path.join(os.tmpdir(), 'swserve-bench-super-weights.json');
  fs.writeFileSync(file, JSON.stringify({ super_weights: [DECLARED_SUPER_WEIGHT] }));
  return file;
}

export function modelCacheDir(): string {
  return path.resolve(process.env.SWSERVE_BENCH_MODELS ?? DEFAULT_MODEL_CACHE);
}

/** The checkpoint folder of a named shape, written on first use; a half-written folder is rebuilt. */
export function ensureModelShape(name: string, cacheDir = modelCacheDir()): string {
  const spec = MODEL_SHAPES[name];
  if (!spec) throw new Error(`unknown model shape ${name}; known: ${Object.keys(MODEL_SHAPES).join(', ')}`);
  const key = crypto.createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 10);
  const dir = path.join(cacheDir, `${name}-${key}`);
  if (fs.existsSync(path.join(dir, COMPLETE_MARKER))) return dir;
  fs.rmSync(dir, { recursive: true, force: true });
  process.stderr.write(`writing ${name} into ${dir}\n`);
  writeTinyCheckpoint(dir, spec);
  fs.writeFileSync(path.join(dir, COMPLETE_MARKER), '');
  return dir;
}

/** A derived artefact of a cached model (a GGUF, an ONNX export), made once by `make` into `target`. */
export function ensureDerived(target: string, make: (target: string) => void): string {
  const marker = `${target}${COMPLETE_MARKER}`;
  if (fs.existsSync(marker)) return target;
  fs.rmSync(target, { recursive: true, force: true });
  make(target);
  fs.writeFileSync(marker, '');
  return target;
}
