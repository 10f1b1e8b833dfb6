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
        const harness = await openHarness(ckpt.dir, true, 'float32', {
          options: { precision, scheme, blockSize: 32, compute: 'float32', cacheDir: path.join(root, 'cache') },
          knownSuperWeights: [SW],
        });
        try {
          const ids = prompt(ckpt.bosId);
          const run = await harness.run(ids, [], undefined, [SW]);
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
