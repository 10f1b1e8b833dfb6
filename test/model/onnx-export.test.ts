// Existing ONNX exports in Optimum's layout, written by the tests from their own tiny checkpoints
// (test/helpers/optimum-layout-export.ts): served through the same engine with the same logits and the
// same switch results as the safetensors path, weights left on disk, and the layouts swserve cannot
// instrument refused with a message saying what is supported.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { downProjElement, openCheckpoint } from '../../src/model/checkpoint.js';
import { buildServingGraph } from '../../src/model/serving-graph.js';
import { scaledPlan, ORIGINAL_SWITCH } from '../../src/model/switch-plan.js';
import { generationRequest, maxAbsDiff, openHarness, type HarnessSession, type LogitsRun } from '../helpers/engine-harness.js';
import { startEngine } from '../helpers/engine-runner.js';
import { gitBlobSha1, sha256 } from '../helpers/local-hub.js';
import { exportOptimumLayout } from '../helpers/optimum-layout-export.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

// Two float32 graphs of the same model that differ in operation order (mask built in the graph, KV
// repeated instead of grouped): what separates them is rounding.
const EXPORT_TOLERANCE = 1e-4;
const SW = { layer: 1, row: 7, col: 33 };

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-onnx-'));
let ckpt: TinyCheckpoint;
let inline: string;
let external: string;
let safetensors: HarnessSession;
const prompt = (): number[] => [ckpt.bosId, ...Buffer.from('Summer is hot. Winter is')];
const continuation = [...Buffer.from(' cold')];

function worst(a: LogitsRun, b: LogitsRun): number {
  return Math.max(...a.prefill.map((l, t) => maxAbsDiff(l, b.prefill[t]!)), ...a.decode.map((l, t) => maxAbsDiff(l, b.decode[t]!)));
}

before(async () => {
  ckpt = buildTinyCheckpoint(path.join(root, 'safetensors'), { arch: 'llama', numLayers: 3, numKvHeads: 2, seed: 7, plantedSuperWeights: [SW] });
  inline = path.join(root, 'inline');
  exportOptimumLayout(ckpt, inline);
  external = path.join(root, 'external');
  exportOptimumLayout(ckpt, external, { externalData: true, subfolder: true });
  safetensors = await openHarness(ckpt.dir);
});
after(async () => {
  await safetensors.release();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('ONNX exports in Optimum layout', () => {
  for (const [name, dir] of [
    ['inline weights', () => inline],
    ['external data under onnx/', () => external],
  ] as const) {
    it(`${name}: the same logits and the same switch results as the safetensors checkpoint`, async () => {
      const exported = await openHarness(dir());
      try {
        assert.ok(exported.checkpoint.onnx);
        for (const plan of [ORIGINAL_SWITCH, scaledPlan([SW], 0), scaledPlan([SW], 0, true), scaledPlan([SW], 2)]) {
          const [expected, actual] = [await safetensors.run(prompt(), continuation, { plan, known: [SW] }), await exported.run(prompt(), continuation, { plan, known: [SW] })];
          assert.ok(worst(expected, actual) < EXPORT_TOLERANCE, `${JSON.stringify(plan)}: ${worst(expected, actual)}`);
          const values = (r: LogitsRun): number[] => r.prefillFrame!.superActivations.map((a) => a.value);
          assert.ok(maxAbsDiff(values(expected), values(actual)) < EXPORT_TOLERANCE);
          const peaks = (r: LogitsRun): number[][] => r.prefillFrame!.layers.map((l) => [l.outputChannel, l.outputPosition, l.inputChannel, l.inputPosition]);
          assert.deepEqual(peaks(actual), peaks(expected));
        }
        const on = await exported.run(prompt(), continuation, { plan: ORIGINAL_SWITCH, known: [SW] });
        const off = await exported.run(prompt(), continuation, { plan: scaledPlan([SW], 0), known: [SW] });
        assert.ok(maxAbsDiff(on.prefill.at(-1)!, off.prefill.at(-1)!) > 1e-2, 'zeroing the super weight changes the export too');
      } finally {
        await exported.release();
      }
    });
  }

  it('finds down_proj through the node, reading the transposed weight in place', () => {
    const exported = openCheckpoint(external);
    assert.equal(exported.onnx!.downProj.length, 3);
    assert.match(exported.onnx!.downProj[1]!.weight.tensor.name, /^onnx::MatMul_\d+$/);
    assert.ok(exported.onnx!.downProj[1]!.weight.transposed);
    const planted = openCheckpoint(ckpt.dir);
    for (const c of [SW, { layer: 0, row: 3, col: 100 }, { layer: 2, row: 63, col: 0 }]) assert.equal(downProjElement(exported, c), downProjElement(planted, c));
    // Weights stay on disk: the graph handed to onnxruntime holds none of them.
    const graph = buildServingGraph(exported, { computeDtype: 'float32', instrument: true });
    assert.ok(graph.bytes.length < fs.statSync(path.join(external, 'onnx', 'model.onnx_data')).size / 4, `${graph.bytes.length} bytes`);
  });

  it('serves mixed switch states in one batch with the same tokens as the safetensors engine', async () => {
    const run = async (modelDir: string): Promise<number[][]> => {
      const runner = await startEngine({ modelDir, knownSuperWeights: [SW] });
      for (const [i, plan] of [ORIGINAL_SWITCH, scaledPlan([SW], 0), scaledPlan([SW], 0.5)].entries()) {
        runner.engine.submit(generationRequest({ id: `r${i}`, prompt: { tokenIds: prompt() }, switchPlan: plan }));
      }
      await runner.drain();
      await runner.engine.close();
      assert.ok(runner.stats.some((s) => s.batchSize === 3));
      return ['r0', 'r1', 'r2'].map((id) => runner.get(id).tokens);
    };
    assert.deepEqual(await run(external), await run(ckpt.dir));
  });

  it('is served from a hub cache snapshot whose files are links into blobs/', async () => {
    const repo = path.join(root, 'hub', 'models--org--onnx');
    const snapshot = path.join(repo, 'snapshots', 'd'.repeat(40));
    for (const file of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'onnx/model.onnx', 'onnx/model.onnx_data']) {
      const bytes = fs.readFileSync(path.join(external, file));
      const etag = file.endsWith('.onnx_data') ? sha256(bytes) : gitBlobSha1(bytes);
      fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
      fs.writeFileSync(path.join(repo, 'blobs', etag), bytes);
      fs.mkdirSync(path.dirname(path.join(snapshot, file)), { recursive: true });
      fs.symlinkSync(path.relative(path.dirname(path.join(snapshot, file)), path.join(repo, 'blobs', etag)), path.join(snapshot, file));
    }
    const linked = await openHarness(snapshot);
    try {
      assert.equal(linked.checkpoint.externalDataDir, fs.realpathSync(path.join(repo, 'blobs')));
      assert.ok(worst(await safetensors.run(prompt(), continuation), await linked.run(prompt(), continuation)) < EXPORT_TOLERANCE);
    } finally {
      await linked.release();
    }
  });

  it('refuses the legacy merged decoder and quantized exports, saying what is supported', () => {
    const legacy = path.join(root, 'legacy');
    exportOptimumLayout(ckpt, legacy, { variant: 'legacy-merged' });
    assert.throws(() => openCheckpoint(legacy), /decoder_model_merged\.onnx: is Optimum's legacy decoder layout .* swserve serves Optimum's single-graph decoder export with past key values/);
    const quantized = path.join(root, 'quantized');
    exportOptimumLayout(ckpt, quantized, { variant: 'matmulnbits' });
    assert.throws(() => openCheckpoint(quantized), /model\.onnx: is a quantized export \(MatMulNBits at \/model\/layers\.0\/mlp\/down_proj\/MatMul_Q4\); swserve serves/);
  });
});
