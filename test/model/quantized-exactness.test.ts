// int8/int4 MatMulNBits logits against the reference forward pass run on the dequantized weights
// (checks the quantized copy and the kernel wiring exactly), and how far they are from float.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { maxAbsDiff, openHarness } from '../helpers/engine-harness.js';
import { dequantizedCheckpoint, klDivergence } from '../helpers/dequantized-weights.js';
import { createReferenceModel } from '../helpers/reference-forward.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const LOGIT_TOLERANCE = 1e-4;
const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-quant-'));
let ckpt: TinyCheckpoint;
const prompt = (bos: number): number[] => [bos, ...Buffer.from('Summer is hot. Winter is')];

before(() => {
  ckpt = buildTinyCheckpoint(path.join(root, 'planted'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 5, plantedSuperWeights: [{ ...SW, strength: 8 }] });
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('quantized logits equal the reference on dequantized weights', () => {
  for (const precision of ['int8', 'int4'] as const) {
    for (const scheme of ['symmetric', 'asymmetric'] as const) {
      it(`${precision} ${scheme}`, async () => {
        const harness = await openHarness(ckpt.dir, true, 'float32', { kind: 'cpu' }, {
          options: { precision, scheme, blockSize: 32, compute: 'float32', cacheDir: path.join(root, 'cache') },
          knownSuperWeights: [SW],
        });
        try {
          const ids = prompt(ckpt.bosId);
          const run = await harness.run(ids, [], { known: [SW] });
          const deq = dequantizedCheckpoint(ckpt, harness.served.quantized!.weights, [SW]);
          const ref = createReferenceModel(deq).forward(ids);
          const float = createReferenceModel(ckpt).forward(ids);
          const worst = Math.max(...run.prefill.map((l, t) => maxAbsDiff(l, ref.logits[t]!)));
          const kl = run.prefill.reduce((a, l, t) => a + klDivergence(float.logits[t]!, l), 0) / run.prefill.length;
          console.log(`${precision} ${scheme}: max |logit - dequantized reference| ${worst.toExponential(2)}, mean KL to float ${kl.toExponential(2)}`);
          assert.ok(worst < LOGIT_TOLERANCE, `max logit difference ${worst}`);
        } finally {
          await harness.release();
        }
      });
    }
  }
});

describe('a bfloat16 checkpoint', () => {
  it('keeps its embedding table in bfloat16 (gathered, then cast) and matches the dequantized reference', async () => {
    const bf16 = buildTinyCheckpoint(path.join(root, 'bf16'), { arch: 'llama', dtype: 'BF16', numLayers: 2, numKvHeads: 2, tieEmbeddings: true, seed: 6 });
    const harness = await openHarness(bf16.dir, true, 'float32', { kind: 'cpu' }, {
      options: { precision: 'int8', blockSize: 32, compute: 'float32', quantizeLmHead: true, cacheDir: path.join(root, 'cache') },
      knownSuperWeights: [],
    });
    try {
      assert.equal(harness.served.quantized!.weights.float.get('model.embed_tokens.weight')!.dtype, 'BF16');
      const ids = prompt(bf16.bosId);
      const run = await harness.run(ids, []);
      const ref = createReferenceModel(dequantizedCheckpoint(bf16, harness.served.quantized!.weights)).forward(ids);
      const worst = Math.max(...run.prefill.map((l, t) => maxAbsDiff(l, ref.logits[t]!)));
      assert.ok(worst < LOGIT_TOLERANCE, `max logit difference ${worst}`);
    } finally {
      await harness.release();
    }
  });
});

describe('block sizes that do not divide the rows', () => {
  // K = 40 (hidden) and 96 (intermediate): 32-element blocks leave a padded last block in each row;
  // 64-element blocks span rows of 40, where no kernel block (16..256) fits, so those tensors are
  // served as float32 after a quantize-dequantize round trip.
  let ragged: TinyCheckpoint;
  before(() => {
    ragged = buildTinyCheckpoint(path.join(root, 'ragged'), { arch: 'llama', hiddenSize: 40, intermediateSize: 96, numHeads: 4, numKvHeads: 2, numLayers: 2, seed: 9 });
  });
  for (const [blockSize, roundTrips] of [[32, false], [64, true]] as const) {
    it(`int4 in blocks of ${blockSize}${roundTrips ? ' (round trip for K = 40)' : ''}`, async () => {
      const harness = await openHarness(ragged.dir, true, 'float32', { kind: 'cpu' }, {
        options: { precision: 'int4', scheme: 'asymmetric', blockSize, compute: 'float32', cacheDir: path.join(root, 'cache') },
        knownSuperWeights: [],
      });
      try {
        assert.equal(harness.served.info.roundTripTensors > 0, roundTrips);
        const ids = prompt(ragged.bosId);
        const run = await harness.run(ids, [ragged.eosId]);
        const reference = createReferenceModel(dequantizedCheckpoint(ragged, harness.served.quantized!.weights));
        const ref = reference.forward(ids);
        const next = reference.forward([ragged.eosId], ref.cache);
        const worst = Math.max(...run.prefill.map((l, t) => maxAbsDiff(l, ref.logits[t]!)), maxAbsDiff(run.decode[0]!, next.logits[0]!));
        assert.ok(worst < LOGIT_TOLERANCE, `max logit difference ${worst}`);
      } finally {
        await harness.release();
      }
    });
  }
});
