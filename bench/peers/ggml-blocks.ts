// llama.cpp's element encodings for the GGUF files we write: F32, F16 and the two round-to-nearest block
// formats Q8_0 and Q4_0 (32 elements per block, an fp16 scale first), bit for bit as ggml-quants.c's
// reference quantizers and gguf-py's quants.py produce them.
import { float32ToHalfBits, halfBitsToFloat32 } from '../../test/helpers/safetensors-writer.js';

export type GgmlType = 'F32' | 'F16' | 'Q8_0' | 'Q4_0';

/** ggml_type codes (ggml.h). */
export const GGML_TYPE_CODES: Record<GgmlType, number> = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8 };

/** Elements per block and bytes per block (ggml's QK8_0/QK4_0 = 32; scale is one fp16). */
export const GGML_BLOCK: Record<GgmlType, { elements: number; bytes: number }> = {
  F32: { elements: 1, bytes: 4 },
  F16: { elements: 1, bytes: 2 },
  Q8_0: { elements: 32, bytes: 2 + 32 },
  Q4_0: { elements: 32, bytes: 2 + 16 },
};

const QK = 32;
const fround = Math.fround;

export function ggmlByteLength(type: GgmlType, elements: number): number {
  const block = GGML_BLOCK[type];
  if (elements % block.elements !== 0) throw new Error(`${elements} elements do not fill ${type} blocks of ${block.elements}`);
  return (elements / block.elements) * block.bytes;
}

/** Encodes float32 values (a row-major tensor whose innermost dimension is a multiple of the block). */
export function encodeGgml(type: GgmlType, values: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'F16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = float32ToHalfBits(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0':
      return quantizeQ8_0(values);
    case 'Q4_0':
      return quantizeQ4_0(values);
  }
}

export function decodeGgml(type: GgmlType, bytes: Uint8Array, elements: number): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(elements);
  switch (type) {
    case 'F32':
      for (let i = 0; i < elements; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    case 'F16':
      for (let i = 0; i < elements; i++) out[i] = halfBitsToFloat32(view.getUint16(i * 2, true));
      return out;
    case 'Q8_0':
      for (let b = 0; b < elements / QK; b++) {
        const base = b * GGML_BLOCK.Q8_0.bytes;
        const d = halfBitsToFloat32(view.getUint16(base, true));
        for (let j = 0; j < QK; j++) out[b * QK + j] = view.getInt8(base + 2 + j) * d;
      }
      return out;
    case 'Q4_0':
      for (let b = 0; b < elements / QK; b++) {
        const base = b * GGML_BLOCK.Q4_0.bytes;
        const d = halfBitsToFloat32(view.getUint16(base, true));
        for (let j = 0; j < QK / 2; j++) {
          const byte = bytes[base + 2 + j]!;
          out[b * QK + j] = ((byte & 0x0f) - 8) * d;
          out[b * QK + j + QK / 2] = ((byte >> 4) - 8) * d;
        }
      }
      return out;
  }
}

/** quantize_row_q8_0_ref: d = amax / 127 in float32, q = round-half-away-from-zero(x / d). */
function quantizeQ8_0(values: Float32Array): Uint8Array {
  checkBlocks(values.length);
  const out = new Uint8Array((values.length / QK) * GGML_BLOCK.Q8_0.bytes);
  const view = new DataView(out.buffer);
  for (let b = 0; b < values.length / QK; b++) {
    let amax = 0;
    for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(values[b * QK + j]!));
    const d = fround(amax / 127);
    const id = d === 0 ? 0 : fround(1 / d);
    const base = b * GGML_BLOCK.Q8_0.bytes;
    view.setUint16(base, float32ToHalfBits(d), true);
    for (let j = 0; j < QK; j++) view.setInt8(base + 2 + j, roundHalfAwayFromZero(fround(values[b * QK + j]! * id)));
  }
  return out;
}

/**
 * quantize_row_q4_0_ref: the element of largest magnitude (sign kept) maps to -8, d = max / -8, and
 * q = min(15, trunc(x / d + 8.5)). Byte j holds element j in its low nibble and element j + 16 in its high
 * nibble. The product is taken in float64 as gguf-py does to match the C reference under FMA.
 */
function quantizeQ4_0(values: Float32Array): Uint8Array {
  checkBlocks(values.length);
  const out = new Uint8Array((values.length / QK) * GGML_BLOCK.Q4_0.bytes);
  const view = new DataView(out.buffer);
  const q = new Uint8Array(QK);
  for (let b = 0; b < values.length / QK; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK; j++) {
      const v = values[b * QK + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = fround(max / -8);
    const id = d === 0 ? 0 : fround(1 / d);
    for (let j = 0; j < QK; j++) q[j] = Math.min(15, Math.trunc(fround(values[b * QK + j]! * id + 8.5)));
    const base = b * GGML_BLOCK.Q4_0.bytes;
    view.setUint16(base, float32ToHalfBits(d), true);
    for (let j = 0; j < QK / 2; j++) out[base + 2 + j] = q[j]! | (q[j + QK / 2]! << 4);
  }
  return out;
}

function roundHalfAwayFromZero(v: number): number {
  return Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
}

function checkBlocks(length: number): void {
  if (length % QK !== 0) throw new Error(`${length} values do not fill blocks of ${QK}`);
}
