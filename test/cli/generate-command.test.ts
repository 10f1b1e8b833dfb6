// `swserve generate` end to end as a user runs it: a child process on a tiny checkpoint.
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
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-cli-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const SW = { layer: 1, row: 7, col: 33 };
const dir = path.join(root, 'm');
buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, seed: 9, plantedSuperWeights: [SW] });
fs.writeFileSync(path.join(dir, 'super_weights.json'), JSON.stringify({ super_weights: [SW] }));

describe('swserve generate', () => {
  it('prints the completion and the super activation, and zeroes it with --super-weights off', async () => {
    const on = await run(process.execPath, [main, 'generate', '--model', dir, '--prompt', 'Hello', '--max-tokens', '6']);
    assert.ok(on.stdout.startsWith('Hello'));
    assert.match(on.stderr, /finish=length prompt=6 completion=6/);
    const value = (stderr: string): number => Number(/super activation 1:7:33: (-?[\d.]+) at position/.exec(stderr)![1]);
    const off = await run(process.execPath, [main, 'generate', '--model', dir, '--prompt', 'Hello', '--max-tokens', '6', '--super-weights', 'off']);
    assert.ok(Math.abs(value(on.stderr)) > 100);
    assert.ok(Math.abs(value(off.stderr)) < 0.1 * Math.abs(value(on.stderr)));
  });

  it('falls back to CPU loudly when CUDA cannot start', async () => {
    const out = await run(process.execPath, [main, 'generate', '--model', dir, '--prompt', 'Hi', '--max-tokens', '2', '--device', 'cuda:0']);
    assert.match(out.stderr, /warning: CUDA device 0 could not start/);
    assert.match(out.stderr, /on cpu \(CUDA device 0 could not start/);
  });

  it('exits non-zero with a message for a bad model folder', async () => {
    await assert.rejects(run(process.execPath, [main, 'generate', '--model', path.join(root, 'nope'), '--prompt', 'x']), (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 1);
      assert.match(err.stderr, /there is no model folder/);
      return true;
    });
  });
});
