// onnxruntime's WebGPU kernels refuse empty inputs (Softmax: "Invalid dispatch group size (0, 1, 1)";
// reductions: "Input tensor cannot be null or empty"), and most steps leave one attention group empty
// (no prompt chunk, or nothing decoding). On WebGPU such a step carries one dummy row in the empty
// group (one token at position 0 with no cached slots); its outputs are dropped before anyone sees them.
import type { KvData, StepFeeds, StepFetches } from './session.js';

type StepRun = (f: StepFeeds, withTaps: boolean) => Promise<StepFetches>;

export interface DummyRowGeometry {
  numLayers: number;
  kvHeads: number;
  headDim: number;
  elements: 'float32' | 'float16';
}

type Rows = Float32Array | Uint16Array | BigInt64Array;

export function withDummyRowsForEmptyGroups(run: StepRun, geometry: DummyRowGeometry): StepRun {
  const alloc = (n: number): KvData => (geometry.elements === 'float32' ? new Float32Array(n) : new Uint16Array(n));
  let zeros = alloc(0);
  // One [1, kvH, P, D] cache of zeros, shared by every layer's key and value (inputs are only read).
  const zeroCache = (slots: number): KvData => {
    const n = geometry.kvHeads * slots * geometry.headDim;
    if (zeros.length < n) zeros = alloc(n);
    return zeros.subarray(0, n);
  };
  return async (f, withTaps) => {
    if (f.decodeRows > 0 && f.prefillRows > 0) return run(f, withTaps);
    const zero = zeroCache(f.slots);
    const emptyCache = Array.from({ length: geometry.numLayers }, () => ({ key: zero, value: zero }));
    const { feeds, token } = f.decodeRows === 0 ? withDummyDecodeRow(f, emptyCache) : withDummyPrefillRow(f, emptyCache);
    const out = await run(feeds, withTaps);
    const rows = feeds.tokens;
    return {
      logits: out.logits,
      logitsLogSumExp: out.logitsLogSumExp,
      present: out.present.map((layer) => ({ key: withoutRow(layer.key, rows, token), value: withoutRow(layer.value, rows, token) })),
      taps: out.taps && {
        inMax: withoutRow(out.taps.inMax, rows, token),
        inChannel: withoutRow(out.taps.inChannel, rows, token),
        outMax: withoutRow(out.taps.outMax, rows, token),
        outChannel: withoutRow(out.taps.outChannel, rows, token),
        switchValues: withoutRow(out.taps.switchValues, rows, token),
      },
    };
  };
}

/** The dummy decodes first in the flat order, so every prefill token and logits index moves up by one. */
function withDummyDecodeRow(f: StepFeeds, cache: StepFeeds['past']['decode']): { feeds: StepFeeds; token: number } {
  const shift = (a: BigInt64Array): BigInt64Array => a.map((i) => i + 1n);
  return {
    token: 0,
    feeds: {
      ...f,
      tokens: f.tokens + 1,
      decodeRows: 1,
      inputIds: withRowAt(f.inputIds, f.tokens, 0),
      positionIds: withRowAt(f.positionIds, f.tokens, 0),
      decodePastLengths: BigInt64Array.of(0n),
      prefillTokenIndex: shift(f.prefillTokenIndex),
      logitsIndex: shift(f.logitsIndex),
      past: { decode: cache, prefill: f.past.prefill },
      switches: { ...f.switches, factors: withRowAt(f.switches.factors, f.tokens, 0) },
    },
  };
}

/** The dummy prefills last: a one-token chunk after every other token. */
function withDummyPrefillRow(f: StepFeeds, cache: StepFeeds['past']['prefill']): { feeds: StepFeeds; token: number } {
  return {
    token: f.tokens,
    feeds: {
      ...f,
      tokens: f.tokens + 1,
      prefillRows: 1,
      chunk: 1,
      inputIds: withRowAt(f.inputIds, f.tokens, f.tokens),
      positionIds: withRowAt(f.positionIds, f.tokens, f.tokens),
      prefillPastLengths: BigInt64Array.of(0n),
      prefillTokenIndex: BigInt64Array.of(BigInt(f.tokens)),
      prefillTokenMask: Uint8Array.of(1),
      prefillRealIndex: BigInt64Array.of(0n),
      past: { decode: f.past.decode, prefill: cache },
      switches: { ...f.switches, factors: withRowAt(f.switches.factors, f.tokens, f.tokens) },
    },
  };
}

/** `data` as `rows` rows with a row of zeros inserted before row `at`. */
function withRowAt<T extends Rows>(data: T, rows: number, at: number): T {
  const width = rows === 0 ? 0 : data.length / rows;
  const out = new (data.constructor as new (n: number) => T)(data.length + width);
  out.set(data.subarray(0, at * width) as never);
  out.set(data.subarray(at * width) as never, (at + 1) * width);
  return out;
}

/** `data` as `rows` rows without row `row`. */
function withoutRow<T extends Rows>(data: T, rows: number, row: number): T {
  const width = data.length / rows;
  const out = new (data.constructor as new (n: number) => T)(data.length - width);
  out.set(data.subarray(0, row * width) as never);
  out.set(data.subarray((row + 1) * width) as never, row * width);
  return out;
}
