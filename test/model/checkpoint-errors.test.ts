// Broken checkpoints are refused before onnxruntime sees them, with the file and the problem named.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { CheckpointError } from '../../src/model/checkpoint-error.js';
import { EngineCore } from '../../src/engine/engine-core.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-corrupt-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A fresh valid checkpoint, then `damage` applied to it. */
function damaged(damage: (dir: string) => void, spec: Parameters<typeof buildTinyCheckpoint>[1] = { arch: 'llama' }): string {
  const dir = path.join(root, `c${counter++}`);
  buildTinyCheckpoint(dir, spec);
  damage(dir);
  return dir;
}

const editJson = (file: string, edit: (json: Record<string, unknown>) => void): void => {
  const json = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json));
};

const CASES: [string, (dir: string) => void, RegExp, string][] = [
  ['missing config.json', (d) => fs.rmSync(path.join(d, 'config.json')), /file is missing/, 'config.json'],
  ['config.json not JSON', (d) => fs.writeFileSync(path.join(d, 'config.json'), '{"hidden_size": 6'), /not valid JSON/, 'config.json'],
  ['unknown architecture', (d) => editJson(path.join(d, 'config.json'), (c) => (c.architectures = ['GPT2LMHeadModel'])), /unknown architecture GPT2LMHeadModel/, 'config.json'],
  ['config field of the wrong type', (d) => editJson(path.join(d, 'config.json'), (c) => (c.hidden_size = 'big')), /hidden_size/, 'config.json'],
  ['unsupported rope scaling', (d) => editJson(path.join(d, 'config.json'), (c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 })), /rope_scaling/, 'config.json'],
  ['missing weights', (d) => fs.rmSync(path.join(d, 'model.safetensors')), /neither model.safetensors nor/, ''],
  ['truncated safetensors', (d) => truncate(path.join(d, 'model.safetensors'), 0.6), /truncated/, 'model.safetensors'],
  ['tiny safetensors', (d) => fs.writeFileSync(path.join(d, 'model.safetensors'), Buffer.alloc(5)), /truncated/, 'model.safetensors'],
  ['corrupt header length', (d) => patch(path.join(d, 'model.safetensors'), 0, Buffer.from([255, 255, 255, 255, 0, 0, 0, 0])), /corrupt header length/, 'model.safetensors'],
  ['header not JSON', (d) => patch(path.join(d, 'model.safetensors'), 8, Buffer.from('!!!!')), /header is not valid JSON/, 'model.safetensors'],
  ['wrong shape', (d) => editJson(path.join(d, 'config.json'), (c) => (c.intermediate_size = 96)), /shape \[128, 64\], config.json implies \[96, 64\]/, 'model.safetensors'],
  ['missing tensor', (d) => editJson(path.join(d, 'config.json'), (c) => (c.num_hidden_layers = 3)), /tensor model.layers.2.input_layernorm.weight is missing/, 'model.safetensors'],
  ['shard index names a missing file', (d) => editJson(path.join(d, 'model.safetensors.index.json'), (c) => ((c.weight_map as Record<string, string>)['model.norm.weight'] = 'gone.safetensors')), /gone.safetensors: file is missing/, 'gone.safetensors'],
];

describe('corrupt or incomplete checkpoints', () => {
  for (const [name, damage, message, file] of CASES) {
    it(`refuses ${name}`, () => {
      const spec = name.startsWith('shard') ? { arch: 'llama' as const, shards: 2 } : undefined;
      const dir = damaged(damage, spec);
      assert.throws(() => openCheckpoint(dir), (err: unknown) => {
        assert.ok(err instanceof CheckpointError, String(err));
        assert.match(err.message, message);
        assert.ok(err.file.endsWith(file), `${err.file} should name ${file}`);
        return true;
      });
    });
  }

  it('refuses a missing tokenizer.json when the engine loads', async () => {
    const dir = damaged((d) => fs.rmSync(path.join(d, 'tokenizer.json')));
    await assert.rejects(
      EngineCore.load({ modelDir: dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 1, maxNumBatchedTokens: 64 }, knownSuperWeights: [] }, () => {}),
      /tokenizer\.json/,
    );
  });

  it('refuses super weights that do not fit the model', async () => {
    const dir = damaged(() => {});
    await assert.rejects(
      EngineCore.load({ modelDir: dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 1, maxNumBatchedTokens: 64 }, knownSuperWeights: [{ layer: 0, row: 999, col: 0 }] }, () => {}),
      /0:999:0: row 999 is outside/,
    );
  });
});

function truncate(file: string, keep: number): void {
  const bytes = fs.readFileSync(file);
  fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length * keep)));
}

function patch(file: string, offset: number, bytes: Buffer): void {
  const data = fs.readFileSync(file);
  bytes.copy(data, offset);
  fs.writeFileSync(file, data);
}
