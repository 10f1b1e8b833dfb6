// Random Llama checkpoints of benchmark size (up to ~1B parameters, float32), written tensor by tensor
// so a 4 GB checkpoint never sits in memory. The config and tokenizer are those of the test helper's
// tiny checkpoints; only the weights differ (uniform noise, no planted super weights).
import fs from 'node:fs';
import path from 'node:path';
import { buildConfig, mulberry32, resolveTinySpec, tensorLayout, type TinyModelSpec } from '../test/helpers/tiny-checkpoint.js';
import { writeByteTokenizer } from '../test/helpers/byte-tokenizer.js';

// Shapes the benchmarks share (issue 11: demo, ~100M and ~1B random; the peers' 25M shape).
export const RANDOM_MODEL_SHAPES: Record<string, TinyModelSpec> = {
  'random-25m': { arch: 'llama', hiddenSize: 512, intermediateSize: 1536, numLayers: 8, numHeads: 8, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 4096, seed: 1 },
  'random-100m': { arch: 'llama', hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 4096, seed: 1 },
  'random-1b': { arch: 'llama', hiddenSize: 2048, intermediateSize: 8192, numLayers: 16, numHeads: 32, numKvHeads: 8, vocabSize: 32000, maxPositionEmbeddings: 4096, seed: 1 },
  // Issue 9's memory statement: a 32k vocabulary and a 4k context on a small body.
  'random-32k-vocab': { arch: 'llama', hiddenSize: 256, intermediateSize: 768, numLayers: 4, numHeads: 8, numKvHeads: 4, vocabSize: 32000, maxPositionEmbeddings: 4096, seed: 1 },
};

// Weights are uniform in [-RANGE, RANGE] (std ~0.029, near the 0.02 of Llama's init) so activations stay finite.
const WEIGHT_RANGE = 0.05;
// Random weights carry no super weight; this coordinate is declared one so that "off" requests switch
// a real weight (the bench measures what the switch costs, not what it does).
export const DECLARED_SUPER_WEIGHT = { layer: 1, row: 7, col: 33 };
// Rows written per chunk: bounds the writer's memory to a few MB whatever the tensor size.
const CHUNK_ELEMENTS = 1 << 20;

/** Writes the checkpoint into `dir` unless a complete one (same config) is already there. */
export function writeRandomCheckpoint(dir: string, spec: TinyModelSpec): string {
  const s = resolveTinySpec(spec);
  const config = buildConfig(s);
  const configText = JSON.stringify(config, null, 2);
  const weightsPath = path.join(dir, 'model.safetensors');
  const configPath = path.join(dir, 'config.json');
  if (fs.existsSync(weightsPath) && fs.existsSync(configPath) && fs.readFileSync(configPath, 'utf8') === configText) return dir;
  fs.mkdirSync(dir, { recursive: true });
  writeByteTokenizer(dir);
  const layout = tensorLayout(s);
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of layout) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let headerText = JSON.stringify(header);
  // Pad the header so the data starts 8-byte aligned, as the safetensors writer does.
  headerText += ' '.repeat((8 - ((8 + headerText.length) % 8)) % 8);
  const fd = fs.openSync(`${weightsPath}.partial`, 'w');
  try {
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(headerText.length));
    fs.writeSync(fd, length);
    fs.writeSync(fd, headerText);
    const uniform = mulberry32(s.seed);
    const chunk = new Float32Array(CHUNK_ELEMENTS);
    for (const [name, shape] of layout) {
      let left = shape.reduce((a, b) => a * b, 1);
      const isNorm = name.endsWith('norm.weight');
      while (left > 0) {
        const n = Math.min(left, CHUNK_ELEMENTS);
        for (let i = 0; i < n; i++) chunk[i] = isNorm ? 1 : (uniform() * 2 - 1) * WEIGHT_RANGE;
        fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, n * 4));
        left -= n;
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${weightsPath}.partial`, weightsPath);
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ bos_token_id: s.bosId, eos_token_id: s.eosId }, null, 2));
  fs.writeFileSync(path.join(dir, 'super_weights.json'), JSON.stringify({ super_weights: [DECLARED_SUPER_WEIGHT] }, null, 2));
  fs.writeFileSync(configPath, configText);
  return dir;
}
