// Seeded pseudo-random numbers for sampling: xoshiro128** with its state filled by a 32-bit hash mixer.
// Each request (and each choice `n` of a request) owns one Rng, so a fixed seed reproduces its output
// regardless of what other requests share the batch.

import { getRandomValues } from "node:crypto";

export interface Rng {
  /** Uniform float in [0, 1) with 53 bits of resolution. */
  next(): number;
}

const TWO_POW_26 = 2 ** 26;
const TWO_POW_53 = 2 ** 53;
/** The 32-bit golden ratio: an odd constant that keeps derived state words apart. */
const GOLDEN_GAMMA = 0x9e3779b9;
/** xoshiro128** has four 32-bit words of state. */
const STATE_WORDS = 4;
const WARMUP_DRAWS = 8;

/** murmur3's 32-bit finalizer: a bijective bit mixer, used only to fill the xoshiro state. */
function mix32(word: number): number {
  let z = word >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** The 64 bits of the float64 seed as two 32-bit words, so every distinct number (large ints included) is a distinct seed. */
function seedWords(seed: number): [number, number] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, seed === 0 ? 0 : seed); // -0 and 0 are the same seed
  return [view.getUint32(0), view.getUint32(4)];
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Creates an independent generator for `seed`. `streamId` (e.g. the choice index of an `n > 1` request)
 * selects a different stream for the same seed, so choices do not repeat each other.
 */
export function createRng(seed: number, streamId = 0): Rng {
  const [high, low] = seedWords(seed);
  // Each word hashes one input word XOR the previous word; the mixer is a bijection, so distinct
  // (seed, streamId) pairs always give distinct states.
  const state = new Uint32Array(STATE_WORDS);
  state[0] = mix32(low);
  state[1] = mix32(high ^ state[0]);
  state[2] = mix32((streamId >>> 0) ^ state[1] ^ GOLDEN_GAMMA);
  state[3] = mix32(state[2] + GOLDEN_GAMMA);
  // An all-zero state would emit zeros forever.
  if ((state[0] | state[1] | state[2] | state[3]) === 0) state[0] = 1;

  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(state[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (state[1] << 9) >>> 0;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 11);
    return result;
  };

  // Discard a few outputs so closely related seeds (1, 2, 3...) have decorrelated first draws.
  for (let i = 0; i < WARMUP_DRAWS; i++) nextUint32();

  return {
    next(): number {
      const high27 = nextUint32() >>> 5;
      const low26 = nextUint32() >>> 6;
      return (high27 * TWO_POW_26 + low26) / TWO_POW_53;
    },
  };
}

/** A fresh random seed (a safe integer) for requests that did not send one. */
export function randomSeed(): number {
  const words = getRandomValues(new Uint32Array(2));
  // 21 high bits + 32 low bits = 53 bits: stays a safe integer so it can be echoed back to the client.
  return (words[0] >>> 11) * 2 ** 32 + words[1];
}
