// Exports any checkpoint swserve reads into the folder layout of an Optimum ONNX export, as
// Transformers.js loads it: config.json, generation_config.json and tokenizer files at the top,
// onnx/model.onnx with every weight (float32) in onnx/model.onnx_data beside it. Tensors are written
// one at a time, so exporting a 1B model never holds it in memory.
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type Checkpoint } from '../../src/model/checkpoint.js';
import { readTensorAsFloat32 } from '../../src/model/safetensors.js';
import { buildOptimumGraph, type WeightSink } from './optimum-graph.js';

export const OPTIMUM_MODEL_FILE = 'model.onnx';
/** The external-data name onnx and Transformers.js use (`${model file}_data`). */
export const OPTIMUM_DATA_FILE = 'model.onnx_data';
const COPIED_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];
// onnx's save_model aligns large tensors to the page size so onnxruntime can map them in place.
const ALIGN_ABOVE_BYTES = 1 << 20;
const PAGE_BYTES = 4096;

export interface OptimumExport {
  /** The exported folder (config and tokenizer files). */
  dir: string;
  modelPath: string;
  dataPath: string;
}

export interface OptimumExportOptions {
  /** Where model.onnx goes inside `outDir`: 'onnx' as Transformers.js expects (default), '' as optimum-cli writes. */
  onnxSubfolder?: string;
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  }
  return out;
}

/** Appends float32 tensors to the external-data file, one at a time. */
function externalDataSink(checkpoint: Checkpoint, fd: number): WeightSink {
  let offset = 0;
  return {
    write(tensor, transposed) {
      const entry = checkpoint.tensors.get(tensor);
      if (!entry) throw new Error(`checkpoint has no tensor ${tensor}`);
      let values = readTensorAsFloat32(checkpoint.dir, entry);
      let dims = entry.shape;
      if (transposed) {
        const [rows, cols] = entry.shape as [number, number];
        values = transpose(values, rows, cols);
        dims = [cols, rows];
      }
      if (values.byteLength >= ALIGN_ABOVE_BYTES && offset % PAGE_BYTES !== 0) {
        const pad = PAGE_BYTES - (offset % PAGE_BYTES);
        fs.writeSync(fd, Buffer.alloc(pad));
        offset += pad;
      }
      fs.writeSync(fd, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      const ref = { dtype: 'float32' as const, dims, location: OPTIMUM_DATA_FILE, offset, length: values.byteLength };
      offset += values.byteLength;
      return ref;
    },
  };
}

/**
 * Exports the checkpoint in `modelDir` to `outDir` in Optimum's decoder layout. config.json gains the
 * `transformers.js_config` Transformers.js reads (float32 weights, one external-data file).
 */
export function exportOptimumOnnx(modelDir: string, outDir: string, options: OptimumExportOptions = {}): OptimumExport {
  const checkpoint = openCheckpoint(modelDir);
  const onnxDir = path.join(outDir, options.onnxSubfolder ?? 'onnx');
  fs.mkdirSync(onnxDir, { recursive: true });
  for (const file of COPIED_FILES) {
    if (fs.existsSync(path.join(checkpoint.dir, file))) fs.copyFileSync(path.join(checkpoint.dir, file), path.join(outDir, file));
  }
  const config = JSON.parse(fs.readFileSync(path.join(outDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config['transformers.js_config'] = { dtype: 'fp32', use_external_data_format: { [OPTIMUM_MODEL_FILE]: 1 } };
  fs.writeFileSync(path.join(outDir, 'config.json'), JSON.stringify(config, null, 2));
  const dataPath = path.join(onnxDir, OPTIMUM_DATA_FILE);
  const fd = fs.openSync(dataPath, 'w');
  let bytes: Uint8Array;
  try {
    bytes = buildOptimumGraph(checkpoint, externalDataSink(checkpoint, fd));
  } finally {
    fs.closeSync(fd);
  }
  const modelPath = path.join(onnxDir, OPTIMUM_MODEL_FILE);
  fs.writeFileSync(modelPath, bytes);
  return { dir: outDir, modelPath, dataPath };
}
