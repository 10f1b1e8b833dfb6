// Writes a quantized copy of a checkpoint, streaming: each tensor is read, quantized and written a
// chunk of rows at a time, so memory stays near one chunk plus one tensor's scales, never the model.
// Every tensor the graph needs goes into the one data file (float tensors copied byte for byte), so
// onnxruntime finds all external data in one folder and the model folder may stay read-only.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Checkpoint } from '../checkpoint.js';
import { readTensorRows, type TensorEntry } from '../safetensors.js';
import { BlockRanges, blockLayout, blockParams, quantizeRows, roundTripRows, type RowTreatment, type Treatment } from './block-quantizer.js';
import { DATA_FILE, MANIFEST_FILE, QUANTIZED_FORMAT, type DataRegion, type FloatTensorRecord, type QuantizedManifest, type QuantizedTensorRecord } from './quantized-manifest.js';
import { tensorPlan } from './quantized-tensors.js';
import type { QuantizationSettings } from './weight-format.js';
import type { SuperWeightCoordinate } from '../switch-plan.js';

// Rows are read and quantized in chunks of about this many float32 bytes.
const CHUNK_BYTES = 16 * 2 ** 20;
// Page-aligned regions let onnxruntime map tensors straight from the file.
const ALIGNMENT = 4096;

export type QuantizeProgress = (done: number, total: number, tensor: string) => void;

/** Sequential writes with zero padding to aligned offsets and a running CRC-32 of everything written. */
class DataWriter {
  private position = 0;
  private crc = 0;
  constructor(private readonly fd: number) {}

  write(bytes: Uint8Array): DataRegion {
    const padding = (ALIGNMENT - (this.position % ALIGNMENT)) % ALIGNMENT;
    if (padding > 0) this.append(new Uint8Array(padding));
    const offset = this.position;
    this.append(bytes);
    return { offset, length: bytes.length };
  }

  /** Appends to the region that the last `write` started. */
  extend(region: DataRegion, bytes: Uint8Array): void {
    if (region.offset + region.length !== this.position) throw new Error('regions must be extended in order');
    this.append(bytes);
    region.length += bytes.length;
  }

  get size(): number {
    return this.position;
  }

  get checksum(): number {
    return this.crc;
  }

  private append(bytes: Uint8Array): void {
    let written = 0;
    while (written < bytes.length) written += fs.writeSync(this.fd, bytes, written, bytes.length - written, this.position + written);
    this.crc = zlib.crc32(bytes, this.crc);
    this.position += bytes.length;
  }
}

export interface CopyInput {
  checkpoint: Checkpoint;
  settings: QuantizationSettings;
  key: string;
  keyMaterial: unknown;
  onProgress?: QuantizeProgress;
}

/** Writes the data file and then the manifest into `dir` (which must exist and be empty). */
export function writeQuantizedCopy(dir: string, input: CopyInput): QuantizedManifest {
  const started = performance.now();
  const { checkpoint, settings } = input;
  const plan = tensorPlan(checkpoint, settings.quantizeLmHead);
  const fd = fs.openSync(path.join(dir, DATA_FILE), 'w');
  const writer = new DataWriter(fd);
  const quantized: QuantizedTensorRecord[] = [];
  const float: FloatTensorRecord[] = [];
  const total = plan.quantized.length + plan.float.length;
  try {
    for (const name of plan.float) {
      float.push(copyFloat(writer, checkpoint, name));
      input.onProgress?.(float.length, total, name);
    }
    for (const [i, name] of plan.quantized.entries()) {
      const record = writeQuantizedTensor(writer, checkpoint, name, settings);
      if ('codes' in record) quantized.push(record);
      else float.push(record);
      input.onProgress?.(plan.float.length + i + 1, total, name);
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  const manifest: QuantizedManifest = {
    format: QUANTIZED_FORMAT,
    key: input.key,
    keyMaterial: input.keyMaterial,
    scheme: settings.scheme,
    protectedWeights: settings.protectedWeights,
    dataFile: DATA_FILE,
    dataBytes: writer.size,
    dataCrc32: writer.checksum,
    quantized,
    float,
    quantizeMs: performance.now() - started,
  };
  // The manifest is written last: a copy without one is never taken for a finished one.
  fs.writeFileSync(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest));
  return manifest;
}

function copyFloat(writer: DataWriter, checkpoint: Checkpoint, name: string): FloatTensorRecord {
  const entry = checkpoint.tensors.get(name)!;
  const fd = fs.openSync(path.join(checkpoint.dir, entry.file), 'r');
  try {
    const region = writer.write(new Uint8Array(0));
    const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, entry.byteLength));
    for (let done = 0; done < entry.byteLength; ) {
      const n = fs.readSync(fd, chunk, 0, Math.min(chunk.length, entry.byteLength - done), entry.offset + done);
      if (n === 0) throw new Error(`${entry.file} ended inside tensor ${name}`);
      writer.extend(region, chunk.subarray(0, n));
      done += n;
    }
    return { name, dtype: entry.dtype, shape: entry.shape, data: region };
  } finally {
    fs.closeSync(fd);
  }
}

/** Two streaming passes: each block's range, then the codes (or float32 round-trip values when no kernel block fits). */
function writeQuantizedTensor(writer: DataWriter, checkpoint: Checkpoint, name: string, settings: QuantizationSettings): QuantizedTensorRecord | FloatTensorRecord {
  const entry = checkpoint.tensors.get(name)!;
  const [rows, k] = entry.shape as [number, number];
  const layout = blockLayout(rows, k, settings.bits, settings.blockSize);
  const treatments = rowTreatments(checkpoint, name, settings);
  const clip = settings.clipOutliers === null ? undefined : clipBounds(checkpoint, entry, settings.clipOutliers, treatments);
  const treatment: Treatment = { clip, row: (r) => treatments.get(r) };
  const ranges = new BlockRanges(layout, treatment);
  forEachChunk(checkpoint, entry, (values, first, count) => ranges.observe(values, first, count));
  const params = blockParams(ranges, settings.scheme, settings.bits);
  if (layout.kernelBlock === undefined) {
    const data = writer.write(new Uint8Array(0));
    forEachChunk(checkpoint, entry, (values, first, count) => {
      writer.extend(data, new Uint8Array(roundTripRows(values, first, count, layout, params, treatment).buffer));
    });
    return { name, dtype: 'F32', shape: [rows, k], data, roundTrip: true };
  }
  const scales = new Float32Array(rows * layout.blocksPerRow);
  const zeroPoints = settings.scheme === 'asymmetric' ? new Uint8Array(rows * layout.zeroPointBytesPerRow) : undefined;
  const codes = writer.write(new Uint8Array(0));
  forEachChunk(checkpoint, entry, (values, first, count) => {
    const q = quantizeRows(values, first, count, layout, params, settings.scheme, treatment);
    writer.extend(codes, q.codes);
    scales.set(q.scales, first * layout.blocksPerRow);
    if (zeroPoints) zeroPoints.set(q.zeroPoints!, first * layout.zeroPointBytesPerRow);
  });
  return {
    name,
    rows,
    k,
    bits: settings.bits,
    blockSize: settings.blockSize,
    kernelBlock: layout.kernelBlock,
    codes,
    scales: writer.write(new Uint8Array(scales.buffer)),
    zeroPoints: zeroPoints ? writer.write(zeroPoints) : undefined,
    clip,
  };
}

/** Calls `body` with successive chunks of a [rows, k] tensor's rows as float32. */
function forEachChunk(checkpoint: Checkpoint, entry: TensorEntry, body: (values: Float32Array, first: number, count: number) => void): void {
  const [rows, k] = entry.shape as [number, number];
  const chunkRows = Math.max(1, Math.floor(CHUNK_BYTES / (k * 4)));
  for (let first = 0; first < rows; first += chunkRows) {
    const count = Math.min(chunkRows, rows - first);
    body(readTensorRows(checkpoint.dir, entry, first, count), first, count);
  }
}

/** Rows of this tensor holding a protected or clip-exempt super weight (down_proj only). */
function rowTreatments(checkpoint: Checkpoint, name: string, settings: QuantizationSettings): Map<number, RowTreatment> {
  const byRow = new Map<number, { protectedColumns: number[]; exemptColumns: number[] }>();
  const at = (c: SuperWeightCoordinate) => {
    let t = byRow.get(c.row);
    if (!t) byRow.set(c.row, (t = { protectedColumns: [], exemptColumns: [] }));
    return t;
  };
  const inTensor = (c: SuperWeightCoordinate): boolean => checkpoint.layout.layers[c.layer]?.down === name;
  for (const c of settings.protectedWeights.filter(inTensor)) at(c).protectedColumns.push(c.col);
  for (const c of settings.clipExempt.filter(inTensor)) at(c).exemptColumns.push(c.col);
  return byRow;
}

/** mean +- z standard deviations of the tensor's values, exempt coordinates left out. */
function clipBounds(checkpoint: Checkpoint, entry: TensorEntry, z: number, treatments: Map<number, RowTreatment>): { lo: number; hi: number } {
  const k = entry.shape[1]!;
  let count = 0;
  let sum = 0;
  let sumSquares = 0;
  forEachChunk(checkpoint, entry, (values, first, n) => {
    for (let r = 0; r < n; r++) {
      const exempt = new Set(treatments.get(first + r)?.exemptColumns ?? []);
      for (let c = 0; c < k; c++) {
        if (exempt.has(c)) continue;
        const v = values[r * k + c]!;
        count++;
        sum += v;
        sumSquares += v * v;
      }
    }
  });
  const mean = sum / count;
  const std = Math.sqrt(Math.max(0, sumSquares / count - mean * mean));
  return { lo: mean - z * std, hi: mean + z * std };
}
