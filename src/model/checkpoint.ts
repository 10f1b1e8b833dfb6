// Opens a Hugging Face model folder: config.json, and model.safetensors or a sharded index (every
// tensor the layout needs is checked for presence and shape here, so onnxruntime never sees a bad file),
// or an existing ONNX export in Optimum's layout (onnx-export.ts checks what it can serve).
import fs from 'node:fs';
import path from 'node:path';
import { ARCHITECTURES } from './architectures/index.js';
import { expectedShapes, type DecoderLayout } from './architectures/layout.js';
import { CheckpointError } from './checkpoint-error.js';
import { HubCacheRepo } from './hub-cache.js';
import { readModelSpec, type ModelSpec } from './hf-config.js';
import { findOnnxModel, legacyLayoutError, legacyOnnxFile, onnxParameterCount, openOnnxExport, readDownProj, readDownProjElement, type OnnxExport } from './onnx-export.js';
import { readSafetensorsHeader, readTensorAsFloat32, readTensorElement, type TensorEntry } from './safetensors.js';
import type { SuperWeightCoordinate } from './switch-plan.js';

export interface Checkpoint {
  dir: string;
  spec: ModelSpec;
  layout: DecoderLayout;
  tensors: ReadonlyMap<string, TensorEntry>;
  /** Where onnxruntime reads the weights from: the model folder, or the hub cache's blobs/ when the files are snapshot links. */
  externalDataDir: string;
  /** Weight file name in the model folder -> its path relative to externalDataDir (the graph's external-data location). */
  dataLocations: ReadonlyMap<string, string>;
  /** Set when the folder holds an ONNX export instead of safetensors (then `tensors` is empty). */
  onnx?: OnnxExport;
}

const SINGLE_FILE = 'model.safetensors';
const SHARD_INDEX = 'model.safetensors.index.json';

export function openCheckpoint(modelDir: string): Checkpoint {
  const dir = path.resolve(modelDir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new CheckpointError(dir, 'model folder does not exist');
  const spec = readModelSpec(dir);
  const layout = ARCHITECTURES[spec.architecture].describeLayout(spec);
  if (!fs.existsSync(path.join(dir, SINGLE_FILE)) && !fs.existsSync(path.join(dir, SHARD_INDEX))) {
    const onnxFile = findOnnxModel(dir);
    if (onnxFile) {
      const onnx = openOnnxExport(onnxFile, spec);
      return { dir, spec, layout, tensors: new Map(), ...locateWeights(onnx.graphDir, onnx.externalFiles), onnx };
    }
    const legacy = legacyOnnxFile(dir);
    if (legacy) throw legacyLayoutError(legacy);
  }
  const files = weightFiles(dir);
  const { externalDataDir, dataLocations } = locateWeights(dir, files);
  const tensors = new Map<string, TensorEntry>();
  for (const file of files) {
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
  return { dir, spec, layout, tensors, externalDataDir, dataLocations };
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
  throw new CheckpointError(dir, `neither ${SINGLE_FILE} nor ${SHARD_INDEX} found, nor an ONNX export (model.onnx)`);
}

// onnxruntime resolves links and refuses external data outside the folder it is given, so a hub
// cache snapshot (every file a link into ../../blobs) is read from blobs/ under the blobs' own names.
// Links are followed only while they stay inside the model folder or its cache repository's blobs/.
export function locateWeights(modelDir: string, files: string[]): { externalDataDir: string; dataLocations: Map<string, string> } {
  const dir = path.resolve(modelDir);
  const realDir = fs.realpathSync(dir);
  const repo = HubCacheRepo.aboveSnapshot(dir);
  const realBlobs = repo ? fs.realpathSync(repo.blobsDir) : undefined;
  const inside = (root: string | undefined, p: string): boolean => root !== undefined && p.startsWith(root + path.sep);
  const reals = files.map((file) => {
    const full = path.join(dir, file);
    if (path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) throw new CheckpointError(full, 'weight file path leaves the model folder');
    if (!fs.existsSync(full)) throw new CheckpointError(full, fs.lstatSync(full, { throwIfNoEntry: false }) ? 'is a link to a file that is missing' : 'file is missing');
    const real = fs.realpathSync(full);
    if (!inside(realDir, real) && !inside(realBlobs, real)) {
      const where = repo ? `the model folder and its hub cache repository ${repo.dir}` : 'the model folder';
      throw new CheckpointError(full, `is a link to ${real}, outside ${where}; copy the files in (e.g. huggingface-cli download --local-dir)`);
    }
    return real;
  });
  const root = reals.every((r) => inside(realDir, r)) ? realDir : reals.every((r) => inside(realBlobs, r)) ? realBlobs : undefined;
  if (!root) {
    throw new CheckpointError(dir, `some weight files are links into ${realBlobs} and some are not; onnxruntime reads every weight from one folder, so make them all links or all plain files`);
  }
  return { externalDataDir: root, dataLocations: new Map(files.map((file, i) => [file, path.relative(root, reals[i]!)])) };
}

/** Total parameters named by the layout (tied embeddings counted once). */
export function parameterCount(checkpoint: Checkpoint): number {
  if (checkpoint.onnx) return onnxParameterCount(checkpoint.onnx);
  let total = 0;
  for (const name of expectedShapes(checkpoint.spec, checkpoint.layout).keys()) {
    total += checkpoint.tensors.get(name)!.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

/** down_proj.weight[row, col] (Hugging Face [out, in]) of the checkpoint, safetensors or ONNX export. */
export function downProjElement(checkpoint: Checkpoint, c: SuperWeightCoordinate): number {
  if (checkpoint.onnx) return readDownProjElement(checkpoint.onnx, c.layer, c.row, c.col, checkpoint.spec);
  const entry = checkpoint.tensors.get(checkpoint.layout.layers[c.layer]!.down)!;
  return readTensorElement(checkpoint.dir, entry, c.row * entry.shape[1]! + c.col);
}

/** A layer's whole down_proj as float32 [out, in]. */
export function downProjWeights(checkpoint: Checkpoint, layer: number): Float32Array {
  if (checkpoint.onnx) return readDownProj(checkpoint.onnx, layer, checkpoint.spec);
  return readTensorAsFloat32(checkpoint.dir, checkpoint.tensors.get(checkpoint.layout.layers[layer]!.down)!);
}
