// Run in a child process whose environment points the Vulkan loader at a driver (the WebGPU test sets
// LD_LIBRARY_PATH and VK_ICD_FILENAMES, which the loader reads at process start): compares WebGPU with
// CPU on one tiny checkpoint and prints the findings as one JSON line for the parent to judge.
// Also the GPU half of bench/gpu/ (tiny-checkpoint check before the throughput runs).
import { scaledPlan, ORIGINAL_SWITCH, type SuperWeightCoordinate, type SwitchPlan } from '../../src/model/switch-plan.js';
import { maxAbsDiff, openHarness, type LogitsRun } from './engine-harness.js';
import { generationRequest } from './engine-harness.js';
import { startEngine } from './engine-runner.js';
import type { ComputeDtype } from '../../src/model/graph-context.js';

// float32 on the GPU against float32 on the CPU: summation order only.
export const FLOAT32_TOLERANCE = 1e-4;
// float16 compute against float32, relative to the largest logit. The widest gap is with the super weight
// zeroed: the switch subtracts W*x (~600 here) from an output that holds it, where float16 values are
// 0.5 apart; lavapipe measured 0.048 of 2.64 (1.8%) there, 0.4% with the weight on.
export const FLOAT16_RELATIVE_TOLERANCE = 4e-2;

export interface WebgpuFindings {
  float32: PrecisionFindings;
  float16: PrecisionFindings;
  /** Greedy tokens of a mixed on/off/scaled batch with different lengths (joins and leaves): CPU, then WebGPU at float32. */
  engineTokens: { cpu: number[][]; webgpu: number[][] };
}

export interface PrecisionFindings {
  device: string;
  computeDtype: string;
  fallbackReason?: string;
  /** Largest |logit difference| to CPU float32 over the prompt and decode steps, per switch plan. */
  maxDiff: Record<string, number>;
  /** Largest |logit| of the CPU run, to read maxDiff against. */
  logitScale: number;
}

const worst = (a: LogitsRun, b: LogitsRun): number =>
  Math.max(...a.prefill.map((l, t) => maxAbsDiff(l, b.prefill[t]!)), ...a.decode.map((l, t) => maxAbsDiff(l, b.decode[t]!)));

export async function probeWebgpu(modelDir: string, superWeight: SuperWeightCoordinate, prompt: number[], continuation: number[]): Promise<WebgpuFindings> {
  const plans = { on: ORIGINAL_SWITCH, off: scaledPlan([superWeight], 0), half: scaledPlan([superWeight], 0.5) };
  const cpuRuns = async (computeDtype: ComputeDtype): Promise<Record<string, LogitsRun>> => {
    const cpu = await openHarness(modelDir, true, computeDtype);
    const runs: Record<string, LogitsRun> = {};
    for (const [k, p] of Object.entries(plans)) runs[k] = await cpu.run(prompt, continuation, { plan: p, known: [superWeight] });
    await cpu.release();
    return runs;
  };
  // CPU float32 is the reference for both precisions: the CPU provider has no float16 ScatterElements(add), which the switch uses.
  const reference = await cpuRuns('float32');
  const logitScale = Math.max(...Object.values(reference).flatMap((r) => r.prefill.map((l) => Math.max(...l.map(Math.abs)))));

  const precision = async (computeDtype: ComputeDtype | undefined): Promise<PrecisionFindings> => {
    const gpu = await openHarness(modelDir, true, computeDtype, { kind: 'webgpu' });
    try {
      const maxDiff: Record<string, number> = {};
      for (const [k, p] of Object.entries(plans)) maxDiff[k] = worst(reference[k]!, await gpu.run(prompt, continuation, { plan: p, known: [superWeight] }));
      const { device, fallbackReason } = gpu.session.info;
      return { device, computeDtype: gpu.session.info.computeDtype, fallbackReason, maxDiff, logitScale };
    } finally {
      await gpu.release();
    }
  };
  const float32 = await precision('float32');
  // The device's own choice: float16 where the adapter has shader-f16.
  const float16 = await precision(undefined);

  const tokens = async (device: 'cpu' | 'webgpu'): Promise<number[][]> => {
    const runner = await startEngine({ modelDir, device: { kind: device }, computeDtype: 'float32', knownSuperWeights: [superWeight] });
    const submit = (i: number, plan: SwitchPlan): void =>
      runner.engine.submit(generationRequest({ id: `r${i}`, prompt: { tokenIds: prompt.slice(0, prompt.length - i) }, maxTokens: 4 + 3 * i, switchPlan: plan }));
    // Two rows of different lengths; the third joins the running batch two steps later.
    submit(0, plans.on);
    submit(1, plans.off);
    await runner.drain(2);
    submit(2, plans.half);
    await runner.drain();
    await runner.engine.close();
    return ['r0', 'r1', 'r2'].map((id) => runner.get(id).tokens);
  };
  return { float32, float16, engineTokens: { cpu: await tokens('cpu'), webgpu: await tokens('webgpu') } };
}

// As a script: node webgpu-probe.js MODEL_DIR LAYER ROW COL
if (process.argv[1]?.endsWith('webgpu-probe.js') && process.argv.length >= 6) {
  const [dir, layer, row, col] = process.argv.slice(2);
  const prompt = [256, ...Buffer.from('Summer is hot. Winter is')];
  probeWebgpu(dir!, { layer: Number(layer), row: Number(row), col: Number(col) }, prompt, [...Buffer.from(' cold')]).then(
    (findings) => process.stdout.write(`${JSON.stringify(findings)}\n`),
    (err: Error) => {
      process.stderr.write(`${err.stack}\n`);
      process.exitCode = 1;
    },
  );
}
