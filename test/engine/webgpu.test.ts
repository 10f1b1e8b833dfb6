// --device webgpu: onnxruntime-node's bundled WebGPU provider (Dawn over Vulkan). Where a Vulkan driver
// is at hand (a GPU, or Mesa's software lavapipe that tools/lavapipe/fetch.sh unpacks into .lavapipe/)
// the real provider runs a tiny checkpoint in a child process (the Vulkan loader reads its environment
// at process start) and is compared with CPU; everywhere, a WebGPU that cannot start falls back to CPU
// loudly.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';
import { FLOAT16_RELATIVE_TOLERANCE, FLOAT32_TOLERANCE, type WebgpuFindings } from '../helpers/webgpu-probe.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MAIN = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
const PROBE = path.join(ROOT, 'dist', 'test', 'helpers', 'webgpu-probe.js');
const SW = { layer: 1, row: 7, col: 33 };
/** The environment that points the Vulkan loader at lavapipe, if it has been unpacked. */
function lavapipeEnv(): NodeJS.ProcessEnv | undefined {
  const dir = process.env.SWSERVE_LAVAPIPE_DIR ?? path.join(ROOT, '.lavapipe');
  const icd = path.join(dir, 'lvp_icd.json');
  if (!fs.existsSync(icd)) return undefined;
  const lib = path.join(dir, 'root', 'usr', 'lib', 'x86_64-linux-gnu');
  return { ...process.env, LD_LIBRARY_PATH: [lib, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'), VK_ICD_FILENAMES: icd };
}

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-webgpu-'));
let ckpt: TinyCheckpoint;
before(() => {
  ckpt = buildTinyCheckpoint(path.join(root, 'tiny'), { arch: 'llama', numKvHeads: 2, seed: 9, plantedSuperWeights: [SW] });
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('--device webgpu', () => {
  it('falls back to CPU loudly when no WebGPU adapter can start', async () => {
    // No Vulkan driver to be found: the same answer on a machine with a GPU as on one without.
    const env = { ...process.env, VK_ICD_FILENAMES: path.join(root, 'no-such-icd.json'), VK_DRIVER_FILES: path.join(root, 'no-such-icd.json') };
    const out = await promisify(execFile)(process.execPath, [MAIN, 'generate', '--model', ckpt.dir, '--prompt', 'Hi', '--max-tokens', '2', '--device', 'webgpu'], { env });
    assert.match(out.stderr, /warning: WebGPU could not start: .*adapter.*; falling back to CPU/);
    assert.match(out.stderr, /on cpu \(WebGPU could not start/);
    assert.match(out.stderr, /finish=length prompt=3 completion=2/);
  });

  it('computes what the CPU computes (lavapipe or a GPU)', async (t) => {
    const env = lavapipeEnv();
    if (!env) return t.skip('no Vulkan driver unpacked: run tools/lavapipe/fetch.sh (CI does) to test the WebGPU provider on this machine');
    const { stdout } = await promisify(execFile)(process.execPath, [PROBE, ckpt.dir, String(SW.layer), String(SW.row), String(SW.col)], { env, maxBuffer: 1 << 20 });
    const findings = JSON.parse(stdout) as WebgpuFindings;
    const { float32, float16 } = findings;
    assert.equal(float32.device, 'webgpu', float32.fallbackReason);
    for (const [plan, diff] of Object.entries(float32.maxDiff)) assert.ok(diff < FLOAT32_TOLERANCE, `float32, switch ${plan}: ${diff}`);
    assert.equal(float16.device, 'webgpu');
    assert.equal(float16.computeDtype, 'float16', float16.fallbackReason);
    for (const [plan, diff] of Object.entries(float16.maxDiff)) {
      assert.ok(diff < FLOAT16_RELATIVE_TOLERANCE * float16.logitScale, `float16, switch ${plan}: ${diff} of ${float16.logitScale}`);
    }
    // A batch that changes (a row joins, rows leave): same tokens as CPU.
    assert.deepEqual(findings.engineTokens.webgpu, findings.engineTokens.cpu);
  });
});
