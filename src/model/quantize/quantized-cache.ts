// Quantized copies on disk, keyed by the checkpoint's files (name, size, mtime, a CRC of each
// safetensors header, config.json) and every quantization setting: a restart with the same model
// and settings loads the copy without quantizing; a copy whose bytes fail their checksum is rebuilt.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Checkpoint } from '../checkpoint.js';
import type { TensorEntry } from '../safetensors.js';
import { readFileRange } from '../../util/file-range.js';
import { coordinateId } from '../switch-plan.js';
import { blockLayout, codeIndex, dequantizeCode, readCode, symmetricZeroCode } from './block-quantizer.js';
import { writeQuantizedCopy, type QuantizeProgress } from './quantized-copy.js';
import { MANIFEST_FILE, manifestSchema, QUANTIZED_FORMAT, type QuantizedManifest, type QuantizedTensorRecord } from './quantized-manifest.js';
import type { QuantizationSettings } from './weight-format.js';

export type CacheState = 'hit' | 'built' | 'rebuilt';

/** A quantized copy ready for the graph: MatMulNBits tensors and float tensors, all in `dir`. */
export interface QuantizedWeights {
  /** The folder holding the copy's data file (onnxruntime's external-data folder). */
  dir: string;
  manifest: QuantizedManifest;
  quantized: ReadonlyMap<string, QuantizedTensorRecord>;
  /** Float tensors as checkpoint-style entries pointing into the data file. */
  float: ReadonlyMap<string, TensorEntry>;
  /** hit: loaded without quantizing; built: quantized now; rebuilt: a broken copy was replaced (`reason`). */
  cache: { state: CacheState; reason?: string };
  /** The value the graph holds at (row, col) of a quantized tensor. */
  elementValue(name: string, row: number, col: number): number;
  /** Whole columns of a quantized tensor as the graph holds them: [cols.length, rows] (column-major). */
  columns(name: string, cols: readonly number[]): Float32Array;
}

export interface OpenQuantizedOptions {
  /** Cache root; defaults to $SWSERVE_CACHE/quantized or ~/.cache/swserve/quantized. */
  cacheDir?: string;
  log?: (message: string) => void;
  onProgress?: QuantizeProgress;
}

export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.SWSERVE_CACHE ?? path.join(os.homedir(), '.cache', 'swserve'), 'quantized');
}

/** What identifies a quantized copy, and its digest. */
export function quantizedCacheKey(checkpoint: Checkpoint, settings: QuantizationSettings): { key: string; material: unknown } {
  const files = [...new Set([...checkpoint.tensors.values()].map((t) => t.file))].sort().map((file) => fileFingerprint(checkpoint.dir, file, true));
  const material = {
    format: QUANTIZED_FORMAT,
    config: fileFingerprint(checkpoint.dir, 'config.json', false),
    files,
    settings: {
      ...settings,
      protectedWeights: settings.protectedWeights.map(coordinateId).sort(),
      clipExempt: settings.clipExempt.map(coordinateId).sort(),
    },
  };
  return { key: crypto.createHash('sha256').update(JSON.stringify(material)).digest('hex'), material };
}

function fileFingerprint(dir: string, file: string, safetensors: boolean): { file: string; size: number; mtimeMs: number; crc32: number } {
  const full = path.join(dir, file);
  const stat = fs.statSync(full);
  const fd = fs.openSync(full, 'r');
  try {
    let length = stat.size;
    if (safetensors) {
      const prefix = Buffer.alloc(8);
      fs.readSync(fd, prefix, 0, 8, 0);
      length = 8 + Number(prefix.readBigUInt64LE(0));
    }
    const bytes = Buffer.alloc(length);
    fs.readSync(fd, bytes, 0, length, 0);
    return { file, size: stat.size, mtimeMs: stat.mtimeMs, crc32: zlib.crc32(bytes) };
  } finally {
    fs.closeSync(fd);
  }
}

/** The copy for these settings: from the cache when it is intact, else quantized now (and cached). */
export function openQuantizedWeights(checkpoint: Checkpoint, settings: QuantizationSettings, options: OpenQuantizedOptions = {}): QuantizedWeights {
  const { key, material } = quantizedCacheKey(checkpoint, settings);
  const root = options.cacheDir ?? defaultCacheRoot();
  const name = `${path.basename(checkpoint.dir)}-int${settings.bits}-b${settings.blockSize}-${settings.scheme}-${key.slice(0, 16)}`;
  const dir = path.join(root, name);
  let state: CacheState = 'built';
  let reason: string | undefined;
  if (fs.existsSync(dir)) {
    reason = verifyCopy(dir, key);
    if (reason === undefined) return loaded(dir, readManifest(dir), { state: 'hit' });
    options.log?.(`quantized copy ${dir} is unusable (${reason}); quantizing again`);
    fs.rmSync(dir, { recursive: true, force: true });
    state = 'rebuilt';
  }
  fs.mkdirSync(root, { recursive: true });
  const partial = fs.mkdtempSync(path.join(root, `${name}.partial-`));
  try {
    options.log?.(`quantizing ${checkpoint.dir} to int${settings.bits}, blocks of ${settings.blockSize} (${settings.scheme}) into ${dir}`);
    writeQuantizedCopy(partial, { checkpoint, settings, key, keyMaterial: material, onProgress: options.onProgress });
    try {
      fs.renameSync(partial, dir);
    } catch (err) {
      // Another process finished the same copy first: use it if it is intact.
      if (verifyCopy(dir, key) !== undefined) throw err;
      fs.rmSync(partial, { recursive: true, force: true });
      return loaded(dir, readManifest(dir), { state: 'hit' });
    }
    // Read back, so a fresh copy and a cached one are described by the same parsed manifest.
    return loaded(dir, readManifest(dir), { state, reason });
  } catch (err) {
    fs.rmSync(partial, { recursive: true, force: true });
    throw err;
  }
}

/** Why the copy in `dir` cannot be used, or undefined when it is intact and made for `key`. */
export function verifyCopy(dir: string, key: string): string | undefined {
  let manifest: QuantizedManifest;
  try {
    manifest = readManifest(dir);
  } catch (err) {
    return (err as Error).message;
  }
  if (manifest.key !== key) return 'it was made from other files or settings';
  const data = path.join(dir, manifest.dataFile);
  if (!fs.existsSync(data)) return `${manifest.dataFile} is missing`;
  const size = fs.statSync(data).size;
  if (size !== manifest.dataBytes) return `${manifest.dataFile} has ${size} bytes, the manifest says ${manifest.dataBytes}`;
  if (fileCrc32(data) !== manifest.dataCrc32) return `${manifest.dataFile} fails its CRC-32 checksum`;
  return undefined;
}

function readManifest(dir: string): QuantizedManifest {
  const file = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(file)) throw new Error(`${MANIFEST_FILE} is missing`);
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    throw new Error(`${MANIFEST_FILE} is not valid JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${MANIFEST_FILE} does not have the expected fields`);
  return parsed.data;
}

// Read in pieces of this size to checksum a data file without holding it.
const CHECKSUM_CHUNK = 16 * 2 ** 20;

function fileCrc32(file: string): number {
  const fd = fs.openSync(file, 'r');
  const chunk = Buffer.alloc(CHECKSUM_CHUNK);
  let crc = 0;
  try {
    for (let position = 0; ; ) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, position);
      if (n === 0) return crc;
      crc = zlib.crc32(chunk.subarray(0, n), crc);
      position += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function loaded(dir: string, manifest: QuantizedManifest, cache: QuantizedWeights['cache']): QuantizedWeights {
  const quantized = new Map(manifest.quantized.map((t) => [t.name, t]));
  const float = new Map<string, TensorEntry>(
    manifest.float.map((t) => [t.name, { name: t.name, file: manifest.dataFile, dtype: t.dtype, shape: t.shape, offset: t.data.offset, byteLength: t.data.length }]),
  );
  const dataPath = path.join(dir, manifest.dataFile);
  return {
    dir,
    manifest,
    quantized,
    float,
    cache,
    elementValue(name, row, col) {
      const t = quantized.get(name);
      if (t) return quantizedElement(dataPath, t, manifest.scheme, row, col);
      const f = manifest.float.find((x) => x.name === name && x.roundTrip);
      if (!f) throw new Error(`${name} is not quantized`);
      return readFileRange(dataPath, f.data.offset + (row * f.shape[1]! + col) * 4, 4).readFloatLE(0);
    },
    columns(name, cols) {
      const t = quantized.get(name);
      if (!t) throw new Error(`${name} is not quantized`);
      return quantizedColumns(dataPath, t, manifest.scheme, cols);
    },
  };
}

function quantizedColumns(dataPath: string, t: QuantizedTensorRecord, scheme: QuantizedManifest['scheme'], cols: readonly number[]): Float32Array {
  const layout = blockLayout(t.rows, t.k, t.bits, t.blockSize);
  const read = (region: { offset: number; length: number }): Buffer => readFileRange(dataPath, region.offset, region.length);
  const codes = read(t.codes);
  const scaleBytes = read(t.scales);
  const scales = new Float32Array(scaleBytes.buffer, scaleBytes.byteOffset, scaleBytes.length / 4);
  const zeroPoints = t.zeroPoints ? read(t.zeroPoints) : undefined;
  const out = new Float32Array(cols.length * t.rows);
  cols.forEach((col, i) => {
    const block = Math.floor(col / t.kernelBlock);
    for (let row = 0; row < t.rows; row++) {
      const zero = scheme === 'asymmetric' ? readCode(zeroPoints!, row * layout.zeroPointBytesPerRow, block, t.bits) : symmetricZeroCode(t.bits);
      out[i * t.rows + row] = dequantizeCode(readCode(codes, 0, codeIndex(layout, row, col), t.bits), scales[row * layout.blocksPerRow + block]!, zero);
    }
  });
  return out;
}

function quantizedElement(dataPath: string, t: QuantizedTensorRecord, scheme: QuantizedManifest['scheme'], row: number, col: number): number {
  const layout = blockLayout(t.rows, t.k, t.bits, t.blockSize);
  const block = Math.floor(col / t.kernelBlock);
  const byteAt = (offset: number): number => readFileRange(dataPath, offset, 1)[0]!;
  // Codes and zero points are bytes (8-bit) or nibbles, low nibble first (4-bit).
  const codeAt = (offset: number, index: number): number =>
    t.bits === 8 ? byteAt(offset + index) : index & 1 ? byteAt(offset + (index >> 1)) >> 4 : byteAt(offset + (index >> 1)) & 0xf;
  const code = codeAt(t.codes.offset, codeIndex(layout, row, col));
  const scale = readFileRange(dataPath, t.scales.offset + (row * layout.blocksPerRow + block) * 4, 4).readFloatLE(0);
  const zero = scheme === 'asymmetric' ? codeAt(t.zeroPoints!.offset + row * layout.zeroPointBytesPerRow, block) : symmetricZeroCode(t.bits);
  return dequantizeCode(code, scale, zero);
}
