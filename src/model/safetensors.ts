// Reads safetensors headers and single values without loading tensors: the graph points onnxruntime
// at the bytes in place (ONNX external data), so the server never copies or converts a checkpoint.
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError } from './checkpoint-error.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

export interface TensorEntry {
  name: string;
  /** File name inside the model folder. */
  file: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute byte offset of the first element in the file (8 + header length + data_offsets[0]). */
  offset: number;
  byteLength: number;
}

// A header beyond this is not a safetensors file we should trust (the reference implementation caps it at 100 MB).
const MAX_HEADER_BYTES = 100_000_000;

interface RawHeaderEntry {
  dtype?: unknown;
  shape?: unknown;
  data_offsets?: unknown;
}

/** Parses and checks one safetensors file's header; every problem names the file. */
export function readSafetensorsHeader(modelDir: string, file: string): TensorEntry[] {
  const filePath = path.join(modelDir, file);
  const fail = (problem: string): never => {
    throw new CheckpointError(filePath, problem);
  };
  let fd: number;
  try {
    fd = fs.openSync(filePath, 'r');
  } catch {
    return fail('file is missing or unreadable');
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) fail(`file is truncated (${fileSize} bytes, no header)`);
    const lengthBytes = Buffer.alloc(8);
    fs.readSync(fd, lengthBytes, 0, 8, 0);
    const headerLength = Number(lengthBytes.readBigUInt64LE(0));
    if (headerLength > MAX_HEADER_BYTES || 8 + headerLength > fileSize) {
      fail(`corrupt header length ${headerLength} for a file of ${fileSize} bytes`);
    }
    const headerBytes = Buffer.alloc(headerLength);
    fs.readSync(fd, headerBytes, 0, headerLength, 8);
    let header: Record<string, RawHeaderEntry>;
    try {
      header = JSON.parse(headerBytes.toString('utf8')) as Record<string, RawHeaderEntry>;
    } catch {
      return fail('header is not valid JSON');
    }
    const dataStart = 8 + headerLength;
    const entries: TensorEntry[] = [];
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      entries.push(parseEntry(name, raw, file, dataStart, fileSize, fail));
    }
    return entries;
  } finally {
    fs.closeSync(fd);
  }
}

function parseEntry(
  name: string,
  raw: RawHeaderEntry,
  file: string,
  dataStart: number,
  fileSize: number,
  fail: (problem: string) => never,
): TensorEntry {
  const dtype = raw.dtype;
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    return fail(`tensor ${name} has dtype ${String(dtype)}; swserve reads F32, F16 and BF16`);
  }
  const shape = raw.shape;
  const offsets = raw.data_offsets;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${name} has a malformed shape`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o) && o >= 0)) {
    fail(`tensor ${name} has malformed data_offsets`);
  }
  const [begin, end] = offsets as [number, number];
  const dims = shape as number[];
  const expected = dims.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  if (end - begin !== expected) fail(`tensor ${name} spans ${end - begin} bytes but ${dtype}${JSON.stringify(dims)} needs ${expected}`);
  if (dataStart + end > fileSize) fail(`file is truncated: tensor ${name} ends at byte ${dataStart + end} of ${fileSize}`);
  return { name, file, dtype, shape: dims, offset: dataStart + begin, byteLength: expected };
}

/** Reads one element (row-major flat index) as a JS number. */
export function readTensorElement(modelDir: string, entry: TensorEntry, flatIndex: number): number {
  const size = DTYPE_BYTES[entry.dtype];
  const bytes = Buffer.alloc(size);
  const fd = fs.openSync(path.join(modelDir, entry.file), 'r');
  try {
    fs.readSync(fd, bytes, 0, size, entry.offset + flatIndex * size);
  } finally {
    fs.closeSync(fd);
  }
  return decodeElements(bytes, entry.dtype)[0]!;
}

/** Reads a whole tensor as float32 (for analysis such as ranking weights, not for serving). */
export function readTensorAsFloat32(modelDir: string, entry: TensorEntry): Float32Array {
  const bytes = Buffer.alloc(entry.byteLength);
  const fd = fs.openSync(path.join(modelDir, entry.file), 'r');
  try {
    fs.readSync(fd, bytes, 0, entry.byteLength, entry.offset);
  } finally {
    fs.closeSync(fd);
  }
  return decodeElements(bytes, entry.dtype);
}

/** Little-endian F32, F16 or BF16 elements as float32. */
export function decodeElements(bytes: Buffer, dtype: SafetensorsDtype): Float32Array {
  const count = bytes.length / DTYPE_BYTES[dtype];
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (dtype === 'F32') out[i] = bytes.readFloatLE(i * 4);
    else if (dtype === 'BF16') out[i] = bf16ToFloat(bytes.readUInt16LE(i * 2));
    else out[i] = f16ToFloat(bytes.readUInt16LE(i * 2));
  }
  return out;
}

const scratch = new DataView(new ArrayBuffer(4));

function bf16ToFloat(bits: number): number {
  scratch.setUint32(0, bits << 16);
  return scratch.getFloat32(0);
}

function f16ToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}
