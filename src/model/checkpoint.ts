// Opens a Hugging Face model folder: config.json, and model.safetensors or a sharded index. Every
// tensor the layout needs is checked for presence and shape here, so onnxruntime never sees a bad file.
import fs from 'node:fs';
import path from 'node:path';
import { ARCHITECTURES } from './architectures/index.js';
import { expectedShapes, type DecoderLayout } from './architectures/layout.js';
import { CheckpointError } from './checkpoint-error.js';
import { readModelSpec, type ModelSpec } from './hf-config.js';
import { readSafetensorsHeader, type TensorEntry } from './safetensors.js';

export interface Checkpoint {
  dir: string;
  spec: ModelSpec;
  layout: DecoderLayout;
  tensors: ReadonlyMap<string, TensorEntry>;
}

const SINGLE_FILE = 'model.safetensors';
const SHARD_INDEX = 'model.safetensors.index.json';

export function openCheckpoint(modelDir: string): Checkpoint {
  const dir = path.resolve(modelDir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(dir, 'model folder does not exist');
  const spec = readModelSpec(dir);
  const layout = ARCHITECTURES[spec.architecture].describeLayout(spec);
  const tensors = new Map<string, TensorEntry>();
  for (const file of weightFiles(dir)) {
    assertInsideFolder(dir, file);
    for (const entry of readSafetensorsHeader(dir, file)) tensors.set(entry.name, entry);
  }
  for (const [name, shape] of expectedShapes(spec, layout)) {
    const entry = tensors.get(name);
    if (!entry) throw new CheckpointError(path.join(dir, SINGLE_FILE), `tensor ${name} is missing`);
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        path.join(dir, entry.file),
        `tensor ${name} has shape [${entry.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
      );
    }
  }
  return { dir, spec, layout, tensors };
}

function weightFiles(dir: string): string[] {
  const indexPath = path.join(dir, SHARD_INDEX);
  if (fs.existsSync(indexPath)) {
    let index: { weight_map?: Record<string, string> };
    try {
      index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as typeof index;
    } catch {
      throw new CheckpointError(indexPath, 'not valid JSON');
    }
    if (!index.weight_map || typeof index.weight_map !== 'object') throw new CheckpointError(indexPath, 'weight_map is missing');
    return [...new Set(Object.values(index.weight_map))];
  }
  if (fs.existsSync(path.join(dir, SINGLE_FILE))) return [SINGLE_FILE];
  throw new CheckpointError(dir, `neither ${SINGLE_FILE} nor ${SHARD_INDEX} found`);
}

// onnxruntime refuses external data that leaves the model folder; say so before it does.
function assertInsideFolder(dir: string, file: string): void {
  const full = path.join(dir, file);
  if (path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
    throw new CheckpointError(full, 'weight file path leaves the model folder');
  }
  if (!fs.existsSync(full)) throw new CheckpointError(full, 'file is missing');
  const real = fs.realpathSync(full);
  if (!real.startsWith(fs.realpathSync(dir) + path.sep)) {
    throw new CheckpointError(full, `is a link to ${real} outside the model folder; copy the files in (e.g. huggingface-cli download --local-dir)`);
  }
}

/** Total parameters named by the layout (tied embeddings counted once). */
export function parameterCount(checkpoint: Checkpoint): number {
  let total = 0;
  for (const name of expectedShapes(checkpoint.spec, checkpoint.layout).keys()) {
    total += checkpoint.tensors.get(name)!.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}
