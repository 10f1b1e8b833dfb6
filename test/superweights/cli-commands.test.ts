// `swserve detect` and `swserve eval` end to end as a user runs them: child processes on a tiny
// checkpoint with a planted super weight, JSON on stdout, charts written where asked.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { referencePerplexity } from '../helpers/reference-perplexity.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const run = promisify(execFile);
const main = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-sw-cli-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const SW = { layer: 1, row: 7, col: 33 };
const dir = path.join(root, 'm');
const checkpoint = buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 4, seed: 9, plantedSuperWeights: [SW] });
// float32 engine vs float64 reference, averaged over every scored token.
const RELATIVE_TOLERANCE = 1e-4;
const text = path.join(root, 'text.txt');
fs.writeFileSync(text, 'The quick brown fox jumps over the lazy dog. Summer is hot, and winter is cold.\n'.repeat(3));

describe('swserve detect', () => {
  it('prints JSON that --super-weights reads, and writes the chart', async () => {
    const chart = path.join(root, 'detect.svg');
    const out = await run(process.execPath, [main, 'detect', '--model', dir, '--json', '--chart', chart]);
    const json = JSON.parse(out.stdout) as { super_weights: { layer: number; row: number; col: number }[]; stop: string };
    assert.deepEqual(json.super_weights.map(({ layer, row, col }) => ({ layer, row, col })), [SW]);
    assert.equal(json.stop, 'no-spike');
    assert.match(fs.readFileSync(chart, 'utf8'), /^<svg /);
  });
});

describe('swserve eval', () => {
  it('runs on super weights detected on load, JSON on stdout and a progress bar on stderr', async () => {
    const chart = path.join(root, 'sweep.svg');
    const out = await run(process.execPath, [main, 'eval', '--model', dir, '--text', text, '--detect', '--window', '48', '--max-windows', '3', '--largest', '20', '--json', '--chart', chart]);
    const json = JSON.parse(out.stdout) as { windows: number; super_weights: { id: string; source: string }[]; conditions: Record<string, { perplexity: number }>; sweep: { scale: number; perplexity: number }[] };
    assert.equal(json.windows, 3);
    assert.deepEqual(json.super_weights.map((s) => s.id), ['1:7:33']);
    assert.match(json.super_weights[0]!.source, /^detected on load/);
    // The windows `--window 48 --max-windows 3` cuts (BOS, then 47 bytes each), scored by the plain
    // reference forward pass: the sweep at scale 1 and the original condition are the model as it
    // is, the sweep at 0 and the zeroed condition the model without its super weight.
    const bytes = [...fs.readFileSync(text)];
    const windows = [0, 1, 2].map((w) => [checkpoint.bosId, ...bytes.slice(w * 47, (w + 1) * 47)]);
    const original = referencePerplexity(checkpoint, windows, []).perplexity;
    const zeroed = referencePerplexity(checkpoint, windows, [], { downProjScale: [{ ...SW, scale: 0 }] }).perplexity;
    const close = (actual: number, expected: number, what: string): void => assert.ok(Math.abs(actual - expected) <= RELATIVE_TOLERANCE * expected, `${what}: ${actual} vs ${expected}`);
    close(json.sweep.find((s) => s.scale === 1)!.perplexity, original, 'sweep at 1');
    close(json.conditions.original!.perplexity, original, 'original');
    close(json.sweep.find((s) => s.scale === 0)!.perplexity, zeroed, 'sweep at 0');
    close(json.conditions.zeroed!.perplexity, zeroed, 'zeroed');
    assert.match(out.stderr, /eval \[#+\] 33\/33/);
    assert.match(fs.readFileSync(chart, 'utf8'), /^<svg /);
  });
});
