// llama.cpp's block formats as bench/peers/ggml-blocks.ts writes them: hand-worked blocks (scale, rounding,
// nibble order), and random blocks dequantized here byte by byte from the format's definition.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeGgml, encodeGgml, ggmlByteLength } from '../../bench/peers/ggml-blocks.js';
import { halfBitsToFloat32 } from '../helpers/safetensors-writer.js';
import { mulberry32 } from '../helpers/tiny-checkpoint.js';

const QK = 32;

/** Q8_0 block b: fp16 scale d, then 32 int8 values; x = q * d. */
function dequantQ8_0ByHand(bytes: Uint8Array, blocks: number): Float64Array {
  const out = new Float64Array(blocks * QK);
  for (let b = 0; b < blocks; b++) {
    const base = b * 34;
    const d = halfBitsToFloat32(bytes[base]! | (bytes[base + 1]! << 8));
    for (let j = 0; j < QK; j++) out[b * QK + j] = ((bytes[base + 2 + j]! << 24) >> 24) * d;
  }
  return out;
}

/** Q4_0 block b: fp16 scale d, then 16 bytes; byte j = (q[j] & 15) | q[j + 16] << 4; x = (q - 8) * d. */
function dequantQ4_0ByHand(bytes: Uint8Array, blocks: number): Float64Array {
  const out = new Float64Array(blocks * QK);
  for (let b = 0; b < blocks; b++) {
    const base = b * 18;
    const d = halfBitsToFloat32(bytes[base]! | (bytes[base + 1]! << 8));
    for (let j = 0; j < 16; j++) {
      out[b * QK + j] = ((bytes[base + 2 + j]! & 15) - 8) * d;
      out[b * QK + j + 16] = ((bytes[base + 2 + j]! >> 4) - 8) * d;
    }
  }
  return out;
}

function randomValues(count: number, seed: number): Float32Array {
  const next = mulberry32(seed);
  // Mixed magnitudes, including a large outlier per few blocks, as real weights have.
  return Float32Array.from({ length: count }, (_, i) => (next() - 0.5) * (i % 97 === 0 ? 40 : 1));
}

describe('ggml block formats', () => {
  it('Q8_0: scale = max|x| / 127, rounding half away from zero', () => {
    const x = new Float32Array(QK);
    x.set([-127, 0.5, -0.5, 2.5, -2.5, 1.25, -1.75, 126.5]);
    const bytes = encodeGgml('Q8_0', x);
    assert.equal(bytes.length, 34);
    assert.equal(bytes[0]! | (bytes[1]! << 8), 0x3c00, 'fp16 scale 1.0');
    const q = Array.from(new Int8Array(bytes.buffer, 2, 8));
    assert.deepEqual(q, [-127, 1, -1, 3, -3, 1, -2, 127]);
  });

  it('Q4_0: the largest magnitude maps to -8, q = min(15, trunc(x / d + 8.5)), low nibbles hold the first half', () => {
    // x[j] = j - 16: the largest magnitude is x[0] = -16, so d = -16 / -8 = 2 and q[j] = min(15, trunc(j / 2 + 0.5)).
    const x = Float32Array.from({ length: QK }, (_, j) => j - 16);
    const bytes = encodeGgml('Q4_0', x);
    assert.equal(bytes.length, 18);
    assert.equal(bytes[0]! | (bytes[1]! << 8), 0x4000, 'fp16 scale 2.0');
    const q = (j: number): number => Math.min(15, Math.trunc(j / 2 + 0.5));
    for (let j = 0; j < 16; j++) assert.equal(bytes[2 + j], q(j) | (q(j + 16) << 4), `byte ${j}`);
    // A block whose largest magnitude is positive gets a negative scale.
    const flipped = encodeGgml('Q4_0', x.map((v) => -v));
    assert.equal(halfBitsToFloat32(flipped[0]! | (flipped[1]! << 8)), -2);
  });

  it('all-zero blocks encode to zero scale and decode to zeros', () => {
    for (const type of ['Q8_0', 'Q4_0'] as const) {
      const decoded = decodeGgml(type, encodeGgml(type, new Float32Array(64)), 64);
      assert.ok(decoded.every((v) => v === 0), type);
    }
  });

  it('random blocks: decoding agrees with the format read by hand, and errors stay within the rounding bound', () => {
    const blocks = 64;
    const x = randomValues(blocks * QK, 7);
    for (const [type, byHand] of [['Q8_0', dequantQ8_0ByHand], ['Q4_0', dequantQ4_0ByHand]] as const) {
      const bytes = encodeGgml(type, x);
      assert.equal(bytes.length, ggmlByteLength(type, x.length));
      const hand = byHand(bytes, blocks);
      const decoded = decodeGgml(type, bytes, x.length);
      for (let i = 0; i < x.length; i++) assert.equal(decoded[i], Math.fround(hand[i]!), `${type} element ${i}`);
      for (let b = 0; b < blocks; b++) {
        const block = x.subarray(b * QK, (b + 1) * QK);
        const amax = Math.max(...Array.from(block, Math.abs));
        // Q8_0 steps are amax/127 (half a step of error); Q4_0 steps are amax/8, and the value opposite the
        // extreme clips from +8 to +7 (one step). The fp16 scale adds its own 2^-11 relative error.
        const step = type === 'Q8_0' ? amax / 127 : amax / 8;
        const bound = (type === 'Q8_0' ? 0.5 : 1) * step + amax * 2 ** -10;
        for (let j = 0; j < QK; j++) assert.ok(Math.abs(decoded[b * QK + j]! - block[j]!) <= bound, `${type} block ${b} element ${j}`);
      }
    }
  });

  it('F16 and F32 round trip', () => {
    const x = randomValues(96, 9);
    assert.deepEqual(decodeGgml('F32', encodeGgml('F32', x), x.length), x);
    const half = decodeGgml('F16', encodeGgml('F16', x), x.length);
    half.forEach((v, i) => assert.ok(Math.abs(v - x[i]!) <= Math.abs(x[i]!) * 2 ** -11 + 2 ** -24, `element ${i}`));
  });
});
