// Round-to-nearest block quantization of [rows, K] weights into MatMulNBits' layout: B uint8
// [N, blocks, blob] with codes packed low nibble first, scales float32 [N, blocks], zero points uint8
// [N, ceil(blocks * bits / 8)] (4-bit packed two per byte). Without zero points the kernel takes the
// middle code (8 or 128) as zero: the symmetric scheme here.
// A block of B elements runs along a row when B <= K (the last one may be short); a larger block
// covers B consecutive elements of the row-major tensor, spanning rows, as simple RTN code does when
// it reshapes a weight to (-1, B). The kernel runs blocks of at most 256 that lie inside one such
// block, each carrying that block's scale, which dequantizes to exactly the same weights.
import type { QuantScheme } from './weight-format.js';

// onnxruntime-node 1.30's CPU MatMulNBits runs blocks of 16, 32, 64, 128 and 256 only.
const KERNEL_BLOCKS = [256, 128, 64, 32, 16];

export interface BlockLayout {
  rows: number;
  /** Input dimension (the reduction axis). */
  k: number;
  bits: 4 | 8;
  /** Elements per scale. */
  blockSize: number;
  /** Blocks cover B consecutive elements of the flattened tensor (B > K). */
  spansRows: boolean;
  /** The block MatMulNBits is told about; undefined when no kernel block fits inside the blocks. */
  kernelBlock: number | undefined;
  /** Kernel blocks per row: ceil(K / kernelBlock). */
  blocksPerRow: number;
  /** Bytes of codes per kernel block. */
  blobBytes: number;
  /** Bytes of zero points per row (asymmetric scheme). */
  zeroPointBytesPerRow: number;
  /** Scale blocks in the tensor. */
  groups: number;
}

export function blockLayout(rows: number, k: number, bits: 4 | 8, blockSize: number): BlockLayout {
  const spansRows = blockSize > k;
  // Along rows any kernel block up to B fits (the row's last block is padded); across rows a kernel
  // block must divide K, so that block boundaries, multiples of B, fall on kernel block boundaries.
  const kernelBlock = spansRows ? KERNEL_BLOCKS.find((b) => k % b === 0) : Math.min(blockSize, KERNEL_BLOCKS[0]!);
  const blocksPerRow = kernelBlock === undefined ? 0 : Math.ceil(k / kernelBlock);
  return {
    rows,
    k,
    bits,
    blockSize,
    spansRows,
    kernelBlock,
    blocksPerRow,
    blobBytes: kernelBlock === undefined ? 0 : (kernelBlock * bits) / 8,
    zeroPointBytesPerRow: Math.ceil((blocksPerRow * bits) / 8),
    groups: spansRows ? Math.ceil((rows * k) / blockSize) : rows * Math.ceil(k / blockSize),
  };
}

/** The scale block of (row, col). */
export function groupOf(layout: BlockLayout, row: number, col: number): number {
  return layout.spansRows ? Math.floor((row * layout.k + col) / layout.blockSize) : row * Math.ceil(layout.k / layout.blockSize) + Math.floor(col / layout.blockSize);
}

export interface RowTreatment {
  /** Columns of this row left out of their block's scale and stored as exactly 0. */
  protectedColumns?: readonly number[];
  /** Columns exempt from clipping. */
  exemptColumns?: readonly number[];
}

export interface Treatment {
  /** Values outside [lo, hi] are clamped before quantizing (z-score clipping), except exempt columns. */
  clip?: { lo: number; hi: number };
  /** By absolute row; absent for rows with nothing special. */
  row?: (row: number) => RowTreatment | undefined;
}

/** The value quantized at each column of a row (clipped), and which columns are held out (protected). */
function prepareRow(values: Float32Array, row: number, treatment: Treatment, out: Float32Array, held: Uint8Array): void {
  out.set(values);
  held.fill(0);
  const t = treatment.row?.(row);
  for (const c of t?.protectedColumns ?? []) held[c] = 1;
  if (treatment.clip) {
    const exempt = new Set(t?.exemptColumns ?? []);
    const { lo, hi } = treatment.clip;
    for (let c = 0; c < out.length; c++) if (!exempt.has(c)) out[c] = Math.min(hi, Math.max(lo, out[c]!));
  }
}

/** Running min (<= 0) and max (>= 0) of every block, fed rows in any chunks (the first of two passes). */
export class BlockRanges {
  readonly lo: Float32Array;
  readonly hi: Float32Array;
  private readonly row: Float32Array;
  private readonly held: Uint8Array;

  constructor(
    private readonly layout: BlockLayout,
    private readonly treatment: Treatment,
  ) {
    this.lo = new Float32Array(layout.groups);
    this.hi = new Float32Array(layout.groups);
    this.row = new Float32Array(layout.k);
    this.held = new Uint8Array(layout.k);
  }

  observe(values: Float32Array, firstRow: number, count: number): void {
    const { k } = this.layout;
    for (let r = 0; r < count; r++) {
      const row = firstRow + r;
      prepareRow(values.subarray(r * k, (r + 1) * k), row, this.treatment, this.row, this.held);
      for (let c = 0; c < k; c++) {
        if (this.held[c]) continue;
        const g = groupOf(this.layout, row, c);
        const v = this.row[c]!;
        if (v < this.lo[g]!) this.lo[g] = v;
        if (v > this.hi[g]!) this.hi[g] = v;
      }
    }
  }
}

export interface BlockParams {
  scales: Float32Array;
  zeros: Uint8Array;
}

/** Each block's scale and zero code from its range. */
export function blockParams(ranges: BlockRanges, scheme: QuantScheme, bits: 4 | 8): BlockParams {
  const groups = ranges.lo.length;
  const scales = new Float32Array(groups);
  const zeros = new Uint8Array(groups);
  const maxCode = (1 << bits) - 1;
  // Symmetric codes run -(2^(b-1) - 1)..2^(b-1) - 1 around the middle code, so +max and -max are both exact.
  const symmetricLimit = (1 << (bits - 1)) - 1;
  for (let g = 0; g < groups; g++) {
    const lo = ranges.lo[g]!;
    const hi = ranges.hi[g]!;
    if (scheme === 'asymmetric') {
      scales[g] = Math.fround((hi - lo) / maxCode) || 1;
      zeros[g] = Math.min(maxCode, Math.max(0, Math.round(-lo / scales[g]!)));
    } else {
      scales[g] = Math.fround(Math.max(hi, -lo) / symmetricLimit) || 1;
      zeros[g] = symmetricZeroCode(bits);
    }
  }
  return { scales, zeros };
}

/** The code that dequantizes to 0 when a block has no zero point. */
export function symmetricZeroCode(bits: 4 | 8): number {
  return 1 << (bits - 1);
}

/** A code's value: (code - zeroPoint) * scale, rounded to float32 as the kernel computes it. */
export function dequantizeCode(code: number, scale: number, zeroPoint: number): number {
  return Math.fround((code - zeroPoint) * scale);
}

/** Code of value v in a block (held-out values get the block's zero code). */
function encode(v: number, held: boolean, scale: number, zero: number, maxCode: number): number {
  return held ? zero : Math.min(maxCode, Math.max(0, Math.round(v / scale) + zero));
}

export interface QuantizedRows {
  codes: Uint8Array;
  /** Per row and kernel block. */
  scales: Float32Array;
  /** Asymmetric scheme only. */
  zeroPoints?: Uint8Array;
}

/** Rows [firstRow, firstRow + count) in the kernel layout (the second pass). */
export function quantizeRows(values: Float32Array, firstRow: number, count: number, layout: BlockLayout, params: BlockParams, scheme: QuantScheme, treatment: Treatment): QuantizedRows {
  const { k, bits, blocksPerRow, blobBytes, zeroPointBytesPerRow } = layout;
  const kernelBlock = layout.kernelBlock!;
  const codes = new Uint8Array(count * blocksPerRow * blobBytes);
  const scales = new Float32Array(count * blocksPerRow);
  const zeroPoints = scheme === 'asymmetric' ? new Uint8Array(count * zeroPointBytesPerRow) : undefined;
  const maxCode = (1 << bits) - 1;
  const row = new Float32Array(k);
  const held = new Uint8Array(k);
  for (let r = 0; r < count; r++) {
    const absolute = firstRow + r;
    prepareRow(values.subarray(r * k, (r + 1) * k), absolute, treatment, row, held);
    for (let b = 0; b < blocksPerRow; b++) {
      const g = groupOf(layout, absolute, b * kernelBlock);
      const scale = params.scales[g]!;
      const zero = params.zeros[g]!;
      scales[r * blocksPerRow + b] = scale;
      if (zeroPoints) writeCode(zeroPoints, r * zeroPointBytesPerRow, b, zero, bits);
      for (let j = 0; j < kernelBlock; j++) {
        const c = b * kernelBlock + j;
        // Padding past K (a row's last block) holds the zero code, so it adds nothing.
        const code = c < k ? encode(row[c]!, held[c] === 1, scale, zero, maxCode) : zero;
        writeCode(codes, 0, (r * blocksPerRow + b) * kernelBlock + j, code, bits);
      }
    }
  }
  return { codes, scales, zeroPoints };
}

/** Rows quantized and dequantized straight back to float32: for blocks no kernel block fits. */
export function roundTripRows(values: Float32Array, firstRow: number, count: number, layout: BlockLayout, params: BlockParams, treatment: Treatment): Float32Array {
  const { k, bits } = layout;
  const maxCode = (1 << bits) - 1;
  const out = new Float32Array(count * k);
  const row = new Float32Array(k);
  const held = new Uint8Array(k);
  for (let r = 0; r < count; r++) {
    prepareRow(values.subarray(r * k, (r + 1) * k), firstRow + r, treatment, row, held);
    for (let c = 0; c < k; c++) {
      const g = groupOf(layout, firstRow + r, c);
      const scale = params.scales[g]!;
      const zero = params.zeros[g]!;
      out[r * k + c] = dequantizeCode(encode(row[c]!, held[c] === 1, scale, zero, maxCode), scale, zero);
    }
  }
  return out;
}

/** Dequantized [rows, k] values of rows in the kernel layout (tests compare the kernel with these). */
export function dequantizeRows(q: QuantizedRows, count: number, layout: BlockLayout, scheme: QuantScheme): Float32Array {
  const kernelBlock = layout.kernelBlock!;
  const out = new Float32Array(count * layout.k);
  for (let r = 0; r < count; r++) {
    for (let c = 0; c < layout.k; c++) {
      const b = Math.floor(c / kernelBlock);
      const zero = scheme === 'asymmetric' ? readCode(q.zeroPoints!, r * layout.zeroPointBytesPerRow, b, layout.bits) : symmetricZeroCode(layout.bits);
      out[r * layout.k + c] = dequantizeCode(readCode(q.codes, 0, codeIndex(layout, r, c), layout.bits), q.scales[r * layout.blocksPerRow + b]!, zero);
    }
  }
  return out;
}

/** Index of (row, col)'s code among a tensor's codes (in elements, not bytes). */
export function codeIndex(layout: BlockLayout, row: number, col: number): number {
  return row * layout.blocksPerRow * layout.kernelBlock! + col;
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
