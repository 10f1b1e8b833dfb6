import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

export interface TensorSpec {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Float32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, TensorSpec>;
  metadata: Record<string, string>;
}

interface HeaderEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  data_offsets: [number, number];
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function float32Bits(value: number): number {
  f32Scratch[0] = value;
  return u32Scratch[0]!;
}

function float32FromBits(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0]!;
}

/** IEEE 754 binary16 bits of the float32 value, round to nearest even (subnormals, overflow to inf). */
export function float32ToHalfBits(value: number): number {
  const x = float32Bits(value);
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Half subnormal: significand = m * 2^(exp - 126) with the implicit bit made explicit.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1;
  return sign | h;
}

export function halfBitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** bfloat16 bits: the top half of the float32, round to nearest even. */
export function float32ToBf16Bits(value: number): number {
  const x = float32Bits(value);
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const lsb = (x >>> 16) & 1;
  return ((x + 0x7fff + lsb) >>> 16) & 0xffff;
}

export function bf16BitsToFloat32(bits: number): number {
  return float32FromBits((bits & 0xffff) << 16);
}

/** The float32 values after a round trip through `dtype`, so references use exactly what is stored. */
export function roundToDtype(data: Float32Array, dtype: SafetensorsDtype): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (dtype === 'F32') out[i] = v;
    else if (dtype === 'F16') out[i] = halfBitsToFloat32(float32ToHalfBits(v));
    else out[i] = bf16BitsToFloat32(float32ToBf16Bits(v));
  }
  return out;
}

export function dtypeByteSize(dtype: SafetensorsDtype): number {
  return dtype === 'F32' ? 4 : 2;
}

function encodeTensor(spec: TensorSpec): Buffer {
  const count = spec.shape.reduce((a, b) => a * b, 1);
  if (count !== spec.data.length) {
    throw new Error(`shape [${spec.shape.join(',')}] needs ${count} values, got ${spec.data.length}`);
  }
  // float32 is stored as is (little-endian, as every platform Node runs on here).
  if (spec.dtype === 'F32') return Buffer.from(spec.data.buffer, spec.data.byteOffset, spec.data.byteLength);
  const buf = Buffer.alloc(count * dtypeByteSize(spec.dtype));
  for (let i = 0; i < count; i++) {
    const v = spec.data[i]!;
    if (spec.dtype === 'F16') buf.writeUInt16LE(float32ToHalfBits(v), i * 2);
    else buf.writeUInt16LE(float32ToBf16Bits(v), i * 2);
  }
  return buf;
}

function decodeTensor(bytes: Buffer, dtype: SafetensorsDtype): Float32Array {
  const n = bytes.length / dtypeByteSize(dtype);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'F32') out[i] = bytes.readFloatLE(i * 4);
    else if (dtype === 'F16') out[i] = halfBitsToFloat32(bytes.readUInt16LE(i * 2));
    else out[i] = bf16BitsToFloat32(bytes.readUInt16LE(i * 2));
  }
  return out;
}

/** Tensors are laid out in the iteration order of `tensors`. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorSpec> | Map<string, TensorSpec>,
  metadata?: Record<string, string>,
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const specs = entries.map(([name, spec]) => ({ name, dtype: spec.dtype, shape: spec.shape }));
  const byName = new Map(entries);
  writeSafetensorsStreaming(path, specs, (name) => byName.get(name)!.data, metadata);
}

export interface StreamedTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/**
 * Writes the header, then asks `values(name)` for each tensor in order and writes it at once, so a file
 * of several GB needs only its largest tensor in memory.
 */
export function writeSafetensorsStreaming(
  path: string,
  tensors: StreamedTensor[],
  values: (name: string) => Float32Array,
  metadata?: Record<string, string>,
): void {
  const header: Record<string, HeaderEntry | Record<string, string>> = {};
  if (metadata !== undefined) header['__metadata__'] = { ...metadata };
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new Error('tensor name __metadata__ is reserved');
    const bytes = t.shape.reduce((a, b) => a * b, 1) * dtypeByteSize(t.dtype);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // The spec pads the header with spaces so the data section starts 8-byte aligned.
  const headerBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (headerBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBuf.length), 0);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, headerBuf);
    for (const t of tensors) writeSync(fd, encodeTensor({ ...t, data: values(t.name) }));
  } finally {
    closeSync(fd);
  }
}

export function readSafetensorsHeader(path: string): { header: Record<string, unknown>; headerLength: number } {
  const buf = readFileSync(path);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  return { header, headerLength };
}

/** Decodes every tensor to float32, keeping the file's tensor order, dtypes and metadata. */
export function readSafetensors(path: string): SafetensorsFile {
  const buf = readFileSync(path);
  const headerLength = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const tensors = new Map<string, TensorSpec>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = raw as Record<string, string>;
      continue;
    }
    const entry = raw as HeaderEntry;
    if (entry.dtype !== 'F32' && entry.dtype !== 'F16' && entry.dtype !== 'BF16') {
      throw new Error(`${path}: tensor ${name} has unsupported dtype ${String(entry.dtype)}`);
    }
    const [begin, end] = entry.data_offsets;
    const bytes = buf.subarray(dataStart + begin, dataStart + end);
    tensors.set(name, { dtype: entry.dtype, shape: [...entry.shape], data: decodeTensor(bytes, entry.dtype) });
  }
  return { tensors, metadata };
}
