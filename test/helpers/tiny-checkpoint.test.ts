// writeTinyCheckpoint (streamed, for benchmark-sized models) writes exactly what buildTinyCheckpoint writes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { buildTinyCheckpoint, writeTinyCheckpoint, type TinyModelSpec } from './tiny-checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-tiny-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('writeTinyCheckpoint', () => {
  const cases: [string, TinyModelSpec][] = [
    ['llama F32', { arch: 'llama', numKvHeads: 2, seed: 21 }],
    ['qwen2 F16 in 2 shards', { arch: 'qwen2', dtype: 'F16', shards: 2, seed: 22 }],
  ];
  for (const [name, spec] of cases) {
    it(`${name}: the same files, byte for byte, as buildTinyCheckpoint`, () => {
      const built = path.join(root, `${name}-built`);
      const streamed = path.join(root, `${name}-streamed`);
      buildTinyCheckpoint(built, spec);
      writeTinyCheckpoint(streamed, spec);
      const files = fs.readdirSync(built).sort();
      assert.deepEqual(fs.readdirSync(streamed).sort(), files);
      for (const file of files) assert.ok(fs.readFileSync(path.join(built, file)).equals(fs.readFileSync(path.join(streamed, file))), file);
    });
  }

  it('refuses planted super weights, which need every weight in memory', () => {
    assert.throws(() => writeTinyCheckpoint(path.join(root, 'planted'), { arch: 'llama', plantedSuperWeights: [{ layer: 0, row: 1, col: 2 }] }), /plant/);
  });
});
