// The GPU check and benchmark: WebGPU logits against CPU on a tiny checkpoint (the tolerances of
// test/engine/webgpu.test.ts), then decode tokens/s at batch 1 and 16 on a random Llama of TinyLlama's
// 1.1B shape, CPU and GPU alternating, medians of the repeats. bench/gpu/run.sh runs it on a GPU machine
// without Node or network from what bench/gpu/prepare.sh packed; `npm run bench:gpu` runs it here.
// Usage: node dist/bench/gpu/gpu-bench.js [--model 1b|100m] [--devices cpu,webgpu] [--batches 1,16] [--tokens 32] [--prompt 16] [--repeats 3]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDevice } from '../../src/engine/device.js';
import { buildTinyCheckpoint, type TinyModelSpec } from '../../test/helpers/tiny-checkpoint.js';
import { FLOAT16_RELATIVE_TOLERANCE, FLOAT32_TOLERANCE, probeWebgpu } from '../../test/helpers/webgpu-probe.js';
import { measure, medianRun, type Measurement } from '../engine-measure.js';

const MODELS: Record<string, TinyModelSpec> = {
  // TinyLlama-1.1B's shape with random float16 weights (2.2 GB on disk).
  '1b': { arch: 'llama', hiddenSize: 2048, intermediateSize: 5632, numLayers: 22, numHeads: 32, numKvHeads: 4, vocabSize: 32000, maxPositionEmbeddings: 2048, dtype: 'F16', seed: 1 },
  '100m': { arch: 'llama', hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, vocabSize: 8192, maxPositionEmbeddings: 2048, seed: 1 },
};
const SW = { layer: 1, row: 7, col: 33 };

async function checkTiny(scratch: string): Promise<boolean> {
  const dir = path.join(scratch, 'tiny');
  buildTinyCheckpoint(dir, { arch: 'llama', numKvHeads: 2, seed: 9, plantedSuperWeights: [SW] });
  const findings = await probeWebgpu(dir, SW, [256, ...Buffer.from('Summer is hot. Winter is')], [...Buffer.from(' cold')]);
  let ok = true;
  for (const f of [findings.float32, findings.float16]) {
    const limit = f.computeDtype === 'float32' ? FLOAT32_TOLERANCE : FLOAT16_RELATIVE_TOLERANCE * f.logitScale;
    const worst = Math.max(...Object.values(f.maxDiff));
    const pass = f.device === 'webgpu' && worst < limit;
    ok &&= pass;
    const diffs = Object.entries(f.maxDiff).map(([k, v]) => `${k} ${v.toExponential(2)}`).join(', ');
    console.log(`tiny check ${f.computeDtype} on ${f.device}${f.fallbackReason ? ` (${f.fallbackReason})` : ''}: max |logit - CPU| ${diffs} (limit ${limit.toExponential(2)}): ${pass ? 'PASS' : 'FAIL'}`);
  }
  const same = JSON.stringify(findings.engineTokens.webgpu) === JSON.stringify(findings.engineTokens.cpu);
  console.log(`tiny check engine tokens (joins and leaves, float32): ${same ? 'PASS' : 'FAIL'}`);
  return ok && same;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      model: { type: 'string', default: '1b' },
      devices: { type: 'string', default: 'cpu,webgpu' },
      batches: { type: 'string', default: '1,16' },
      tokens: { type: 'string', default: '32' },
      prompt: { type: 'string', default: '16' },
      repeats: { type: 'string', default: '3' },
    },
  });
  const spec = MODELS[values.model] ?? (() => { throw new Error(`--model ${values.model}: one of ${Object.keys(MODELS).join(', ')}`); })();
  const devices = values.devices.split(',');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-gpu-bench-'));
  const started = performance.now();
  try {
    const checked = devices.includes('webgpu') ? await checkTiny(scratch) : true;
    const dir = path.join(scratch, values.model);
    const built = performance.now();
    buildTinyCheckpoint(dir, spec);
    console.log(`random Llama ${values.model} built in ${((performance.now() - built) / 1000).toFixed(0)} s`);
    const rows: Measurement[] = [];
    for (const batch of values.batches.split(',').map(Number)) {
      const runs = new Map<string, Measurement[]>(devices.map((d) => [d, []]));
      for (let rep = 0; rep < Number(values.repeats); rep++) {
        // Devices alternate within each repeat, so drift on the machine touches both alike.
        for (const device of devices) {
          const r = await measure({ modelDir: dir, known: [], instrument: true, batch, tokens: Number(values.tokens), promptLength: Number(values.prompt), device: parseDevice(device) });
          runs.get(device)!.push(r);
          process.stderr.write(`${device} (${r.device}, ${r.computeDtype}) batch=${batch}: ${r.decodeTokensPerSecond.toFixed(1)} tok/s\n`);
        }
      }
      for (const device of devices) rows.push(medianRun(runs.get(device)!));
    }
    console.log(`\n| device | compute | batch | decode tok/s | outside session.run | prefill ms |`);
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) {
      console.log(`| ${r.device}${r.fallbackReason ? ` (${r.fallbackReason})` : ''} | ${r.computeDtype} | ${r.batch} | ${r.decodeTokensPerSecond.toFixed(1)} | ${(r.outsideRunShare * 100).toFixed(1)}% | ${r.prefillMs.toFixed(0)} |`);
    }
    console.log(`\nmodel ${values.model}: ${values.tokens} decode tokens after a ${values.prompt}-token prompt, median of ${values.repeats}`);
    console.log(`${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), node ${process.version}, ${((performance.now() - started) / 1000).toFixed(0)} s in all`);
    if (!checked) process.exitCode = 1;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

void main();
