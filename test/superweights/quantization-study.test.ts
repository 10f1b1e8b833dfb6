// `swserve eval --weights int4 --block-sizes ... --protect both` end to end on a tiny checkpoint whose
// planted super weight is 100x the typical weight: JSON on stdout, the chart, and the study's finding
// (the plain copy falls away from float32 at large blocks, the protected one much less).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const run = promisify(execFile);
const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-study-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const SW = { layer: 1, row: 7, col: 33 };
const dir = path.join(root, 'm');
buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, intermediateSize: 512, numKvHeads: 2, seed: 23, plantedSuperWeights: [{ ...SW, strength: 8 }] });
fs.writeFileSync(path.join(dir, 'super_weights.json'), JSON.stringify({ super_weights: [SW] }));
const text = path.join(root, 'text.txt');
fs.writeFileSync(text, 'The quick brown fox jumps over the lazy dog. Summer is hot, and winter is cold.\n'.repeat(4));

interface StudyPointJson {
  block_size: number;
  protect: 'on' | 'off';
  perplexity: number;
  kl_to_float32: number;
  stop_words: { original: number; zeroed: number };
  super_activations: { id: string; value: number }[];
  served_as: string;
}

describe('swserve eval --block-sizes', () => {
  it('compares protected and plain copies per block size against float32', async () => {
    const chart = path.join(root, 'study.svg');
    const args = ['eval', '--model', dir, '--text', text, '--weights', 'int4', '--block-sizes', '32,65536', '--protect', 'both', '--compute', 'float32'];
    const out = await run(process.execPath, [main, ...args, '--window', '64', '--max-windows', '3', '--json', '--chart', chart, '--quantized-cache', path.join(root, 'cache')]);
    const json = JSON.parse(out.stdout) as { windows: number; float32: { perplexity: number }; points: StudyPointJson[] };
    assert.equal(json.windows, 3);
    assert.deepEqual(json.points.map((p) => [p.block_size, p.protect]), [[32, 'off'], [32, 'on'], [65536, 'off'], [65536, 'on']]);
    for (const p of json.points) {
      assert.match(p.served_as, /^MatMulNBits/);
      assert.deepEqual(p.super_activations.map((a) => a.id), ['1:7:33']);
    }
    const at = (size: number, protect: string): StudyPointJson => json.points.find((p) => p.block_size === size && p.protect === protect)!;
    // A random model's perplexity says little; its next-token distributions say how far a copy is from float32.
    assert.ok(at(65536, 'on').kl_to_float32 * 2 < at(65536, 'off').kl_to_float32, `KL protected ${at(65536, 'on').kl_to_float32}, plain ${at(65536, 'off').kl_to_float32}`);
    assert.ok(at(32, 'on').kl_to_float32 < at(65536, 'off').kl_to_float32);
    assert.match(out.stderr, /study \[#+\] 5\/5/);
    assert.match(fs.readFileSync(chart, 'utf8'), /^<svg [^]*super weights protected[^]*plain round-to-nearest/);
  });

  it('refuses a study without a quantized precision', async () => {
    await assert.rejects(run(process.execPath, [main, 'eval', '--model', dir, '--text', text, '--block-sizes', '32']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 2);
      assert.match(err.stderr, /add --weights int8 or --weights int4/);
      return true;
    });
  });
});
