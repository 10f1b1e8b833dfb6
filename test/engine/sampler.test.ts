import { describe, it } from "node:test";
import assert from "node:assert/strict";

import { createRng, randomSeed, type Rng } from "../../src/engine/rng.js";
import {
  GREEDY_SAMPLING,
  applyLogitBias,
  applyMinP,
  applyPenalties,
  applyTemperature,
  applyTopK,
  applyTopP,
  argmax,
  createPenaltyState,
  createSamplerScratch,
  logSoftmax,
  recordOutputToken,
  sampleToken,
  topLogprobs,
  type PenaltyState,
  type SamplingParams,
} from "../../src/engine/sampler.js";

const NEG_INF = -Infinity;

/** Neutral parameters; each test overrides the knob it exercises. */
function params(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return { ...GREEDY_SAMPLING, temperature: 1, topK: -1, ...overrides };
}

function penaltyState(promptIds: number[], outputIds: number[]): PenaltyState {
  const state = createPenaltyState(promptIds);
  for (const id of outputIds) recordOutputToken(state.outputCounts, id);
  return state;
}

/** Logits whose softmax is exactly `probabilities` (up to float32 rounding). */
function logitsFor(probabilities: number[]): Float32Array {
  return Float32Array.from(probabilities, (p) => Math.log(p));
}

function softmax(values: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(values));
  const exps = Array.from(values, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

function keptIds(logits: Float32Array): number[] {
  const ids: number[] = [];
  logits.forEach((value, id) => {
    if (value !== NEG_INF) ids.push(id);
  });
  return ids;
}

function assertClose(actual: ArrayLike<number>, expected: number[], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (expected[i] === NEG_INF) assert.equal(actual[i], NEG_INF, `index ${i}`);
    else assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

describe("rng", () => {
  it("reproduces a sequence for the same seed and stream, and differs otherwise", () => {
    const draw = (rng: Rng): number[] => Array.from({ length: 8 }, () => rng.next());
    assert.deepEqual(draw(createRng(42)), draw(createRng(42)));
    assert.notDeepEqual(draw(createRng(42)), draw(createRng(43)));
    assert.notDeepEqual(draw(createRng(42, 0)), draw(createRng(42, 1)));
    assert.notDeepEqual(draw(createRng(2 ** 40)), draw(createRng(2 ** 40 + 1)));
  });

  it("draws uniformly from [0, 1)", () => {
    const rng = createRng(7);
    const draws = 100_000;
    const bins = new Array<number>(10).fill(0);
    for (let i = 0; i < draws; i++) {
      const value = rng.next();
      assert.ok(value >= 0 && value < 1);
      bins[Math.floor(value * 10)]++;
    }
    for (const count of bins) assert.ok(Math.abs(count / draws - 0.1) < 0.005, `bin share ${count / draws}`);
  });

  it("makes safe-integer random seeds", () => {
    const seed = randomSeed();
    assert.ok(Number.isSafeInteger(seed) && seed >= 0);
    assert.notEqual(seed, randomSeed());
  });
});

describe("logit processing steps", () => {
  const cases: { name: string; input: number[]; apply: (logits: Float32Array) => void; expected: number[] }[] = [
    {
      name: "logit bias adds per token and ignores ids outside the vocabulary",
      input: [1, 2, 3],
      apply: (l) => applyLogitBias(l, new Map([[0, 5], [2, -1], [7, 9]])),
      expected: [6, 2, 2],
    },
    {
      name: "repetition penalty divides positive and multiplies negative logits of prompt and output tokens",
      input: [2, -2, 1, 4],
      apply: (l) => applyPenalties(l, params({ repetitionPenalty: 2 }), penaltyState([0, 0], [1, 1])),
      expected: [1, -4, 1, 4],
    },
    {
      name: "frequency penalty subtracts count * penalty for output tokens only",
      input: [2, -2, 1, 4],
      apply: (l) => applyPenalties(l, params({ frequencyPenalty: 0.5 }), penaltyState([2], [0, 0, 3])),
      expected: [1, -2, 1, 3.5],
    },
    {
      name: "presence penalty subtracts once for output tokens only",
      input: [2, -2, 1, 4],
      apply: (l) => applyPenalties(l, params({ presencePenalty: 1 }), penaltyState([2], [0, 0, 3])),
      expected: [1, -2, 1, 3],
    },
    {
      name: "repetition applies before frequency and presence",
      input: [2, -2, 1, 4],
      apply: (l) =>
        applyPenalties(
          l,
          params({ repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 1 }),
          penaltyState([2], [0, 0]),
        ),
      expected: [-1, -2, 0.5, 4],
    },
    {
      name: "temperature divides the logits",
      input: [1, -2, 0],
      apply: (l) => applyTemperature(l, 0.5),
      expected: [2, -4, 0],
    },
    {
      name: "top-k keeps the k largest",
      input: [1, 3, 2, 0],
      apply: (l) => applyTopK(l, 2),
      expected: [NEG_INF, 3, 2, NEG_INF],
    },
    {
      name: "top-k keeps ties with the k-th largest",
      input: [1, 2, 2, 0],
      apply: (l) => applyTopK(l, 1),
      expected: [NEG_INF, 2, 2, NEG_INF],
    },
    { name: "top-k -1 is off", input: [1, 3, 2], apply: (l) => applyTopK(l, -1), expected: [1, 3, 2] },
    { name: "top-k 0 is off", input: [1, 3, 2], apply: (l) => applyTopK(l, 0), expected: [1, 3, 2] },
    { name: "top-k >= vocabulary is off", input: [1, 3, 2], apply: (l) => applyTopK(l, 3), expected: [1, 3, 2] },
  ];
  for (const { name, input, apply, expected } of cases) {
    it(name, () => {
      const logits = Float32Array.from(input);
      apply(logits);
      assertClose(logits, expected);
    });
  }
});

describe("top-p and min-p", () => {
  // Probabilities 0.15, 0.5, 0.05, 0.3: sorted 0.5 (id 1), 0.3 (id 3), 0.15 (id 0), 0.05 (id 2).
  const probabilities = [0.15, 0.5, 0.05, 0.3];
  const cases: { name: string; apply: (logits: Float32Array) => void; kept: number[] }[] = [
    { name: "top-p 1 is off", apply: (l) => applyTopP(l, 1), kept: [0, 1, 2, 3] },
    { name: "top-p 0.4 keeps the top token", apply: (l) => applyTopP(l, 0.4), kept: [1] },
    { name: "top-p 0.7 keeps until the mass reaches it (0.5 + 0.3)", apply: (l) => applyTopP(l, 0.7), kept: [1, 3] },
    { name: "top-p 0.9 keeps three", apply: (l) => applyTopP(l, 0.9), kept: [0, 1, 3] },
    { name: "top-p 0.99 keeps all", apply: (l) => applyTopP(l, 0.99), kept: [0, 1, 2, 3] },
    { name: "top-p near 0 still keeps one token", apply: (l) => applyTopP(l, 1e-9), kept: [1] },
    { name: "min-p 0 is off", apply: (l) => applyMinP(l, 0), kept: [0, 1, 2, 3] },
    { name: "min-p 0.2 drops probabilities below 0.1", apply: (l) => applyMinP(l, 0.2), kept: [0, 1, 3] },
    { name: "min-p 0.5 drops probabilities below 0.25", apply: (l) => applyMinP(l, 0.5), kept: [1, 3] },
  ];
  for (const { name, apply, kept } of cases) {
    it(name, () => {
      const logits = logitsFor(probabilities);
      apply(logits);
      assert.deepEqual(keptIds(logits), kept);
    });
  }

  it("top-p matches a full-sort reference on large random vocabularies", () => {
    const rng = createRng(123);
    const scratch = createSamplerScratch(20_000);
    for (const [spread, topP] of [[0.01, 0.9], [1, 0.5], [4, 0.95], [10, 0.3], [0, 0.8]] as const) {
      const logits = Float32Array.from({ length: 20_000 }, () => (rng.next() - 0.5) * spread);
      const probs = softmax(logits);
      const order = probs.map((p, id) => ({ p, id })).sort((a, b) => b.p - a.p || a.id - b.id);
      let cumulative = 0;
      let cutoffProbability = 0;
      for (const { p } of order) {
        cumulative += p;
        cutoffProbability = p;
        if (cumulative >= topP) break;
      }
      const expected = order.filter(({ p }) => p >= cutoffProbability).map(({ id }) => id).sort((a, b) => a - b);
      const work = Float32Array.from(logits);
      applyTopP(work, topP, scratch);
      assert.deepEqual(keptIds(work), expected, `spread ${spread}, topP ${topP}`);
    }
  });
});

describe("greedy and logprobs", () => {
  it("argmax breaks ties toward the lowest id", () => {
    assert.equal(argmax(Float32Array.from([1, 3, 3, 2])), 1);
    assert.equal(argmax(Float32Array.from([NEG_INF, NEG_INF])), 0);
  });

  it("logSoftmax and topLogprobs (ties to the lowest id)", () => {
    const logprobs = logSoftmax(logitsFor([0.1, 0.4, 0.4, 0.1]));
    assertClose(logprobs, [0.1, 0.4, 0.4, 0.1].map(Math.log));
    const top = topLogprobs(logprobs, 3);
    assert.deepEqual(top.map((t) => t.tokenId), [1, 2, 0]);
    assertClose(top.map((t) => t.logprob), [Math.log(0.4), Math.log(0.4), Math.log(0.1)]);
    assert.deepEqual(topLogprobs(logprobs, 0), []);
    assert.equal(topLogprobs(logprobs, 10).length, 4);
  });

  const greedyCases: { name: string; raw: number[]; overrides: Partial<SamplingParams>; state?: PenaltyState; tokenId: number }[] = [
    { name: "plain argmax", raw: [1, 5, 2], overrides: {}, tokenId: 1 },
    { name: "logit bias changes the winner", raw: [1, 5, 2], overrides: { logitBias: new Map([[2, 10]]) }, tokenId: 2 },
    {
      name: "presence penalty changes the winner",
      raw: [1, 5, 4.5],
      overrides: { presencePenalty: 1 },
      state: penaltyState([], [1]),
      tokenId: 2,
    },
    {
      name: "repetition penalty on a prompt token changes the winner",
      raw: [1, 5, 3],
      overrides: { repetitionPenalty: 2 },
      state: penaltyState([1], []),
      tokenId: 2,
    },
    { name: "temperature below epsilon is greedy", raw: [1, 5, 2], overrides: { temperature: 1e-6 }, tokenId: 1 },
  ];
  for (const { name, raw, overrides, state, tokenId } of greedyCases) {
    it(`greedy: ${name}`, () => {
      const result = sampleToken(Float32Array.from(raw), params({ temperature: 0, ...overrides }), state ?? penaltyState([], []), createRng(1));
      assert.equal(result.tokenId, tokenId);
    });
  }

  it("reports logprobs of the raw logits, not the processed ones, and leaves the input untouched", () => {
    const raw = logitsFor([0.2, 0.5, 0.3]);
    const before = Float32Array.from(raw);
    const result = sampleToken(
      raw,
      params({ temperature: 0, logitBias: new Map([[0, 100]]), logprobs: 2 }),
      penaltyState([], []),
      createRng(1),
    );
    assert.equal(result.tokenId, 0);
    assert.ok(Math.abs(result.logprob - Math.log(0.2)) < 1e-6);
    assert.deepEqual(result.topLogprobs.map((t) => t.tokenId), [1, 2]);
    assertClose(result.topLogprobs.map((t) => t.logprob), [Math.log(0.5), Math.log(0.3)]);
    assert.deepEqual(raw, before);
  });

  it("rejects a scratch buffer of the wrong size", () => {
    assert.throws(
      () => sampleToken(new Float32Array(4), params(), penaltyState([], []), createRng(1), createSamplerScratch(3)),
      /scratch holds 3 logits but the row has 4/,
    );
  });
});

describe("random sampling", () => {
  const rawLogits = Float32Array.from([2, 1, 0.5, -1, 0]);

  function frequencies(overrides: Partial<SamplingParams>, seed: number, draws: number): number[] {
    const rng = createRng(seed);
    const scratch = createSamplerScratch(rawLogits.length);
    const counts = new Array<number>(rawLogits.length).fill(0);
    const state = penaltyState([], []);
    for (let i = 0; i < draws; i++) counts[sampleToken(rawLogits, params(overrides), state, rng, scratch).tokenId]++;
    return counts.map((c) => c / draws);
  }

  it("is reproducible for a seed and differs across seeds", () => {
    const sequence = (seed: number): number[] => {
      const rng = createRng(seed);
      const scratch = createSamplerScratch(rawLogits.length);
      return Array.from({ length: 50 }, () => sampleToken(rawLogits, params(), penaltyState([], []), rng, scratch).tokenId);
    };
    assert.deepEqual(sequence(2024), sequence(2024));
    assert.notDeepEqual(sequence(2024), sequence(2025));
  });

  const draws = 40_000;
  const tolerance = 0.01; // ~4 standard deviations at 40k draws
  const statisticalCases: { name: string; overrides: Partial<SamplingParams>; expected: number[] }[] = [
    { name: "temperature 1 matches softmax", overrides: {}, expected: softmax(rawLogits) },
    { name: "temperature 0.7 matches softmax(logits / 0.7)", overrides: { temperature: 0.7 }, expected: softmax(Array.from(rawLogits, (l) => l / 0.7)) },
    { name: "temperature 2 matches softmax(logits / 2)", overrides: { temperature: 2 }, expected: softmax(Array.from(rawLogits, (l) => l / 2)) },
    {
      name: "top-k 2 renormalizes over the two largest",
      overrides: { topK: 2 },
      expected: [...softmax([2, 1]), 0, 0, 0],
    },
    {
      name: "min-p renormalizes over the survivors",
      // max prob p0; min-p 0.3 keeps logits >= 2 + ln 0.3 = 0.796: ids 0, 1.
      overrides: { minP: 0.3 },
      expected: [...softmax([2, 1]), 0, 0, 0],
    },
  ];
  for (const { name, overrides, expected } of statisticalCases) {
    it(`frequencies: ${name}`, () => {
      const observed = frequencies(overrides, 99, draws);
      observed.forEach((share, id) => {
        if (expected[id] === 0) assert.equal(share, 0, `token ${id} must never be drawn`);
        else assert.ok(Math.abs(share - expected[id]) < tolerance, `token ${id}: ${share} vs ${expected[id]}`);
      });
    });
  }
});
