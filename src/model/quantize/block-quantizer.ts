// Round-to-nearest block quantization of [rows, K] weights along K into MatMulNBits' layout:
// B uint8 [N, blocks, blob] with codes packed low nibble first, scales float32 [N, blocks],
// zero points uint8 [N, ceil(blocks * bits / 8)] (4-bit packed two per byte). Without zero points the
// kernel takes the middle code (8 or 128) as zero, which is the symmetric scheme here.
import { kernelBlockSize, type QuantScheme } from './weight-format.js';

export interface BlockLayout {
  /** Input dimension (the reduction axis). */
  k: number;
  bits: 4 | 8;
  /** The block scales are computed over. */
  blockSize: number;
  /** The block the kernel is told about (blockSize, or 256 with scales repeated). */
  kernelBlock: number;
  /** Kernel blocks per row: ceil(k / kernelBlock). */
  blocksPerRow: number;
  /** Bytes of codes per kernel block. */
  blobBytes: number;
  /** Bytes of zero points per row (asymmetric scheme). */
  zeroPointBytesPerRow: number;
}

export function blockLayout(k: number, bits: 4 | 8, blockSize: number): BlockLayout {
  const kernelBlock = kernelBlockSize(blockSize);
  const blocksPerRow = Math.ceil(k / kernelBlock);
  return { k, bits, blockSize, kernelBlock, blocksPerRow, blobBytes: (kernelBlock * bits) / 8, zeroPointBytesPerRow: Math.ceil((blocksPerRow * bits) / 8) };
}

export interface QuantizedRows {
  codes: Uint8Array;
  scales: Float32Array;
  /** Asymmetric scheme only. */
  zeroPoints?: Uint8Array;
}

export interface RowTreatment {
  /** Columns of this row left out of their block's scale and stored as exactly 0. */
  protectedColumns?: readonly number[];
  /** Columns exempt from clipping. */
  exemptColumns?: readonly number[];
}

export interface QuantizeOptions {
  scheme: QuantScheme;
  /** Values outside [lo, hi] are clamped before quantizing (z-score clipping), except exempt columns. */
  clip?: { lo: number; hi: number };
  /** Per row index within `values`; absent for rows with nothing special. */
  treatment?: (row: number) => RowTreatment | undefined;
}

/** The code that dequantizes to 0 when a block has no zero point. */
export function symmetricZeroCode(bits: 4 | 8): number {
  return 1 << (bits - 1);
}

/** A code's value: (code - zeroPoint) * scale, rounded to float32 as the kernel computes it. */
export function dequantizeCode(code: number, scale: number, zeroPoint: number): number {
  return Math.fround((code - zeroPoint) * scale);
}

/** Quantizes `rows` rows of `layout.k` values (row-major) into the kernel layout. */
export function quantizeRows(values: Float32Array, rows: number, layout: BlockLayout, options: QuantizeOptions): QuantizedRows {
  const { k, bits, blockSize, kernelBlock, blocksPerRow, blobBytes, zeroPointBytesPerRow } = layout;
  const asymmetric = options.scheme === 'asymmetric';
  const codes = new Uint8Array(rows * blocksPerRow * blobBytes);
  const scales = new Float32Array(rows * blocksPerRow);
  const zeroPoints = asymmetric ? new Uint8Array(rows * zeroPointBytesPerRow) : undefined;
  const maxCode = (1 << bits) - 1;
  // Symmetric codes use -(2^(b-1) - 1)..2^(b-1) - 1 around the middle code, so +max and -max are both exact.
  const symmetricLimit = (1 << (bits - 1)) - 1;
  const row = new Float32Array(k);
  const skip = new Uint8Array(k);
  for (let r = 0; r < rows; r++) {
    row.set(values.subarray(r * k, (r + 1) * k));
    skip.fill(0);
    const treatment = options.treatment?.(r);
    for (const c of treatment?.protectedColumns ?? []) skip[c] = 1;
    if (options.clip) {
      const exempt = new Set(treatment?.exemptColumns ?? []);
      for (let c = 0; c < k; c++) if (!exempt.has(c)) row[c] = Math.min(options.clip.hi, Math.max(options.clip.lo, row[c]!));
    }
    for (let start = 0; start < k; start += blockSize) {
      const end = Math.min(k, start + blockSize);
      let lo = 0;
      let hi = 0;
      for (let c = start; c < end; c++) {
        if (skip[c]) continue;
        const v = row[c]!;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      let scale: number;
      let zero: number;
      if (asymmetric) {
        scale = Math.fround((hi - lo) / maxCode) || 1;
        zero = Math.min(maxCode, Math.max(0, Math.round(-lo / scale)));
      } else {
        scale = Math.fround(Math.max(hi, -lo) / symmetricLimit) || 1;
        zero = symmetricZeroCode(bits);
      }
      for (let c = start; c < start + blockSize && c < blocksPerRow * kernelBlock; c += kernelBlock) {
        const block = r * blocksPerRow + c / kernelBlock;
        scales[block] = scale;
        if (zeroPoints) writeCode(zeroPoints, r * zeroPointBytesPerRow, c / kernelBlock, zero, bits);
      }
      for (let c = start; c < end; c++) {
        const code = skip[c] ? zero : Math.min(maxCode, Math.max(0, Math.round(row[c]! / scale) + zero));
        writeCode(codes, 0, codeIndex(layout, r, c), code, bits);
      }
      // Padding past k (the last block of a row) holds the zero code, so it adds nothing.
      for (let c = end; c < Math.min(start + blockSize, blocksPerRow * kernelBlock); c++) writeCode(codes, 0, codeIndex(layout, r, c), zero, bits);
    }
  }
  return { codes, scales, zeroPoints };
}

/** Dequantized [rows, k] values of quantized rows (tests compare the kernel with these). */
export function dequantizeRows(q: QuantizedRows, rows: number, layout: BlockLayout, scheme: QuantScheme): Float32Array {
  const out = new Float32Array(rows * layout.k);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < layout.k; c++) {
      const block = Math.floor(c / layout.kernelBlock);
      const zero = scheme === 'asymmetric' ? readCode(q.zeroPoints!, r * layout.zeroPointBytesPerRow, block, layout.bits) : symmetricZeroCode(layout.bits);
      out[r * layout.k + c] = dequantizeCode(readCode(q.codes, 0, codeIndex(layout, r, c), layout.bits), q.scales[r * layout.blocksPerRow + block]!, zero);
    }
  }
  return out;
}

/** Index of (row, col)'s code among a tensor's codes (in elements, not bytes). */
export function codeIndex(layout: BlockLayout, row: number, col: number): number {
  return row * layout.blocksPerRow * layout.kernelBlock + col;
}

export function readCode(bytes: Uint8Array, base: number, index: number, bits: 4 | 8): number {
  if (bits === 8) return bytes[base + index]!;
  const byte = bytes[base + (index >> 1)]!;
  return index & 1 ? byte >> 4 : byte & 0xf;
}

function writeCode(bytes: Uint8Array, base: number, index: number, code: number, bits: 4 | 8): void {
  if (bits === 8) {
    bytes[base + index] = code;
    return;
  }
  const at = base + (index >> 1);
  bytes[at] = index & 1 ? (bytes[at]! & 0x0f) | (code << 4) : (bytes[at]! & 0xf0) | code;
}
