// GGUF v3 (llama.cpp's model file, docs/gguf.md): a little-endian header of typed metadata and tensor
// descriptions, then each tensor's data at an offset aligned to general.alignment. The writer streams
// tensor by tensor so a converter never holds a whole model; the reader parses the header back.
import fs from 'node:fs';
import { GGML_TYPE_CODES, ggmlByteLength, type GgmlType } from './ggml-blocks.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian uint32
const GGUF_VERSION = 3;
/** llama.cpp's default (GGUF_DEFAULT_ALIGNMENT); written as general.alignment too. */
export const GGUF_ALIGNMENT = 32;

/** gguf_type codes. */
const VALUE_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
type ScalarKind = 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64';

export type GgufValue =
  | { kind: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'string'; value: string }
  | { kind: 'array'; element: 'string'; values: string[] }
  | { kind: 'array'; element: 'u32' | 'i32' | 'f32'; values: number[] };

export interface GgufTensorSpec {
  name: string;
  /** Row-major shape as safetensors/numpy write it; GGUF stores it reversed (ne[0] innermost). */
  shape: number[];
  type: GgmlType;
}

export interface GgufTensorSource extends GgufTensorSpec {
  /** Produces the encoded bytes when the writer reaches this tensor. */
  encode(): Uint8Array;
}

export const u32 = (value: number): GgufValue => ({ kind: 'u32', value });
export const f32 = (value: number): GgufValue => ({ kind: 'f32', value });
export const str = (value: string): GgufValue => ({ kind: 'string', value });
export const bool = (value: boolean): GgufValue => ({ kind: 'bool', value });

class ByteSink {
  private readonly chunks: Buffer[] = [];
  length = 0;
  push(buf: Buffer): void {
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  scalar(kind: ScalarKind, v: number | boolean | string): void {
    if (kind === 'string') return this.string(v as string);
    const b = Buffer.alloc(kind === 'bool' ? 1 : kind === 'u64' ? 8 : 4);
    if (kind === 'u32') b.writeUInt32LE(v as number);
    else if (kind === 'i32') b.writeInt32LE(v as number);
    else if (kind === 'f32') b.writeFloatLE(v as number);
    else if (kind === 'u64') b.writeBigUInt64LE(BigInt(v as number));
    else b.writeUInt8(v ? 1 : 0);
    this.push(b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function padTo(length: number): number {
  return (GGUF_ALIGNMENT - (length % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Header bytes (padded to the alignment) and each tensor's offset inside the data section. */
export function ggufHeader(metadata: [string, GgufValue][], tensors: GgufTensorSpec[]): { header: Buffer; offsets: number[] } {
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(tensors.length);
  sink.u64(metadata.length);
  for (const [key, value] of metadata) {
    sink.string(key);
    if (value.kind === 'array') {
      sink.u32(VALUE_TYPE.array);
      sink.u32(VALUE_TYPE[value.element]);
      sink.u64(value.values.length);
      for (const v of value.values) sink.scalar(value.element, v);
    } else {
      sink.u32(VALUE_TYPE[value.kind]);
      sink.scalar(value.kind, value.value);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    sink.string(t.name);
    sink.u32(t.shape.length);
    for (const dim of [...t.shape].reverse()) sink.u64(dim);
    sink.u32(GGML_TYPE_CODES[t.type]);
    sink.u64(offset);
    offsets.push(offset);
    const size = ggmlByteLength(t.type, elementCount(t.shape));
    offset += size + padTo(size);
  }
  sink.push(Buffer.alloc(padTo(sink.length)));
  return { header: sink.bytes(), offsets };
}

/** Writes a GGUF file, encoding one tensor at a time. */
export function writeGguf(path: string, metadata: [string, GgufValue][], tensors: GgufTensorSource[]): void {
  const { header } = ggufHeader(metadata, tensors);
  const fd = fs.openSync(path, 'w');
  try {
    fs.writeSync(fd, header);
    for (const t of tensors) {
      const bytes = t.encode();
      const expected = ggmlByteLength(t.type, elementCount(t.shape));
      if (bytes.length !== expected) throw new Error(`tensor ${t.name}: encoded ${bytes.length} bytes, ${t.type} needs ${expected}`);
      fs.writeSync(fd, bytes);
      fs.writeSync(fd, Buffer.alloc(padTo(bytes.length)));
    }
  } finally {
    fs.closeSync(fd);
  }
}

export interface GgufTensorInfo extends GgufTensorSpec {
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number;
  byteLength: number;
}

export interface GgufContents {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
}

const TYPE_BY_CODE = new Map(Object.entries(GGML_TYPE_CODES).map(([name, code]) => [code, name as GgmlType]));
const KIND_BY_CODE = new Map<number, string>(Object.entries(VALUE_TYPE).map(([name, code]) => [code, name]));

// Headers are read from the file's start, growing the read until the header fits (a tokenizer of 128k
// tokens makes a header of a few MB; the tensor data is never read).
const FIRST_HEADER_READ = 1 << 20;

/** Parses a GGUF header (metadata and tensor table). */
export function readGguf(path: string): GgufContents {
  const size = fs.statSync(path).size;
  for (let length = Math.min(size, FIRST_HEADER_READ); ; length = Math.min(size, length * 4)) {
    try {
      return parseGgufHeader(path, readPrefix(path, length));
    } catch (err) {
      if (!(err instanceof RangeError) || length === size) throw err;
    }
  }
}

function readPrefix(path: string, length: number): Buffer {
  const buf = Buffer.alloc(length);
  const fd = fs.openSync(path, 'r');
  try {
    fs.readSync(fd, buf, 0, length, 0);
  } finally {
    fs.closeSync(fd);
  }
  return buf;
}

function parseGgufHeader(path: string, buf: Buffer): GgufContents {
  let pos = 0;
  const u32At = (): number => (pos += 4, buf.readUInt32LE(pos - 4));
  const u64At = (): number => (pos += 8, Number(buf.readBigUInt64LE(pos - 8)));
  const stringAt = (): string => {
    const length = u64At();
    pos += length;
    if (pos > buf.length) throw new RangeError('header continues past the bytes read');
    return buf.toString('utf8', pos - length, pos);
  };
  const scalarAt = (kind: string): number | boolean | string => {
    switch (kind) {
      case 'u32': return u32At();
      case 'i32': return (pos += 4, buf.readInt32LE(pos - 4));
      case 'f32': return (pos += 4, buf.readFloatLE(pos - 4));
      case 'u64': return u64At();
      case 'bool': return (pos += 1, buf.readUInt8(pos - 1) !== 0);
      case 'string': return stringAt();
      default: throw new Error(`${path}: metadata type ${kind} is not read here`);
    }
  };
  if (u32At() !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file`);
  const version = u32At();
  const tensorCount = u64At();
  const metadataCount = u64At();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < metadataCount; i++) {
    const key = stringAt();
    const kind = KIND_BY_CODE.get(u32At()) ?? 'unknown';
    if (kind === 'array') {
      const element = KIND_BY_CODE.get(u32At()) ?? 'unknown';
      const count = u64At();
      const values = Array.from({ length: count }, () => scalarAt(element));
      metadata.set(key, { kind: 'array', element, values } as GgufValue);
    } else {
      metadata.set(key, { kind, value: scalarAt(kind) } as GgufValue);
    }
  }
  const raw: (GgufTensorSpec & { offset: number })[] = [];
  for (let i = 0; i < tensorCount; i++) {
    const name = stringAt();
    const dims = Array.from({ length: u32At() }, () => u64At());
    const code = u32At();
    const type = TYPE_BY_CODE.get(code);
    if (!type) throw new Error(`${path}: tensor ${name} has ggml type ${code}, not one this reader knows`);
    raw.push({ name, shape: dims.reverse(), type, offset: u64At() });
  }
  const dataStart = pos + padTo(pos);
  const tensors = raw.map(({ offset, ...t }) => ({
    ...t,
    fileOffset: dataStart + offset,
    byteLength: ggmlByteLength(t.type, elementCount(t.shape)),
  }));
  return { version, metadata, tensors };
}

/** The encoded bytes of one tensor from a GGUF file. */
export function readGgufTensorBytes(path: string, tensor: GgufTensorInfo): Uint8Array {
  const out = Buffer.alloc(tensor.byteLength);
  const fd = fs.openSync(path, 'r');
  try {
    fs.readSync(fd, out, 0, tensor.byteLength, tensor.fileOffset);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}
