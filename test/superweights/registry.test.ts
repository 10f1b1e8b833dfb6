// The registry: its own data fits the shapes it lists; models are matched by id, fine-tune id or
// shapes; a named model with other shapes and a coordinate outside the model are refused with a message.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { parseModelSpec, readModelSpec, type ModelSpec } from '../../src/model/hf-config.js';
import { startEngineWithSuperWeights } from '../../src/superweights/engine-startup.js';
import { BUILTIN_REGISTRY_FILE, matchRegistry, readRegistryFile } from '../../src/superweights/registry.js';
import { resolveSuperWeights } from '../../src/superweights/resolve-super-weights.js';
import { coordinateId } from '../../src/model/switch-plan.js';
import { buildTinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const builtin = readRegistryFile(BUILTIN_REGISTRY_FILE);
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-registry-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

/** A config.json's spec without any weights: matching needs only the config. */
function spec(fields: Record<string, unknown>): ModelSpec {
  return parseModelSpec({ num_attention_heads: 32, vocab_size: 32000, ...fields });
}

const llama2 = { architectures: ['LlamaForCausalLM'], hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, max_position_embeddings: 4096 };

describe('the built-in registry', () => {
  it('lists the paper table and later reports, each with a source, fitting its own shapes', () => {
    assert.ok(builtin.length >= 11);
    for (const entry of builtin) {
      assert.ok(entry.source.length > 0);
      for (const c of entry.superWeights) {
        assert.ok(c.layer < entry.shapes.numLayers && c.row < entry.shapes.hiddenSize && c.col < entry.shapes.intermediateSize, `${entry.id} ${coordinateId(c)}`);
      }
    }
  });

  it('matches by shapes when the id is unknown, telling Llama-2-7B from Llama-7B by context length', () => {
    const m2 = matchRegistry(builtin, spec(llama2), ['my-finetune']);
    assert.equal(m2?.entry.id, 'meta-llama/Llama-2-7b-hf');
    assert.equal(m2?.by, 'shapes');
    assert.deepEqual(m2?.superWeights.map(coordinateId), ['1:2533:7890', '1:1415:7890']);
    assert.match(m2!.superWeights[1]!.source, /later work/);
    const m1 = matchRegistry(builtin, spec({ ...llama2, max_position_embeddings: 2048 }), ['x']);
    assert.deepEqual(m1?.superWeights.map(coordinateId), ['2:3968:7003']);
    assert.match(m1!.superWeights[0]!.source, /matched by architecture and shapes: Yu et al/);
    assert.equal(matchRegistry(builtin, spec({ ...llama2, max_position_embeddings: 32768 }), ['x']), null);
  });

  it('matches by id and by a listed fine-tune id, as a hub id or a folder name', () => {
    assert.equal(matchRegistry(builtin, spec({ ...llama2, _name_or_path: 'meta-llama/Llama-2-7b-chat-hf' }), [])?.by, 'fine-tune');
    // A folder named like the model wins over the shape match (which would say Llama-2).
    assert.equal(matchRegistry(builtin, spec(llama2), ['/models/llama-7b/'])?.entry.id, 'huggyllama/llama-7b');
  });

  it('refuses a model named like a listed one whose shapes differ', () => {
    assert.throws(
      () => matchRegistry(builtin, spec({ ...llama2, num_hidden_layers: 16 }), ['meta-llama/Llama-2-7b-hf']),
      /named like meta-llama\/Llama-2-7b-hf but its config differs: numLayers 16 \(registry: 32\)/,
    );
  });
});

describe('super weights for a loaded model', () => {
  const dir = path.join(root, 'tiny');
  buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, seed: 4 });
  const tinySpec = readModelSpec(dir);
  const write = (name: string, content: unknown): string => {
    const file = path.join(root, name);
    fs.writeFileSync(file, JSON.stringify(content));
    return file;
  };
  const registryFile = write('my-registry.json', {
    models: [
      {
        id: 'someone/tiny-llama',
        shapes: { architecture: 'LlamaForCausalLM', hiddenSize: 64, intermediateSize: 128, numLayers: 3 },
        source: 'our own detection run',
        superWeights: [{ layer: 1, row: 7, col: 33 }],
      },
    ],
  });

  it('a checkpoint whose config matches a user registry entry gets its coordinates, in the engine too', async () => {
    const inForce = resolveSuperWeights({ modelDir: dir, spec: tinySpec, superWeightsFile: registryFile });
    assert.equal(inForce.origin, 'registry');
    assert.deepEqual(inForce.superWeights, [{ layer: 1, row: 7, col: 33, source: 'registry someone/tiny-llama, matched by architecture and shapes: our own detection run' }]);
    const started = await startEngineWithSuperWeights({
      engine: { modelDir: dir, device: { kind: 'cpu' }, instrument: true, limits: { maxNumSeqs: 4, maxNumBatchedTokens: 1024 } },
      superWeightsFile: registryFile,
      detectOnLoad: false,
    });
    try {
      assert.deepEqual(started.engine.info.knownSuperWeights.map(coordinateId), ['1:7:33']);
    } finally {
      await started.engine.close();
    }
  });

  it('refuses a coordinate outside the model, naming its source', () => {
    const file = write('bad.json', { super_weights: [{ layer: 1, row: 64, col: 3 }] });
    assert.throws(() => resolveSuperWeights({ modelDir: dir, spec: tinySpec, superWeightsFile: file }), /super weights from file .*bad\.json do not fit .*: 1:64:3: row 64 is outside down_proj's 64 output channels/);
    const registry = write('bad-registry.json', { models: [{ id: 'x/tiny', shapes: { architecture: 'LlamaForCausalLM', hiddenSize: 64, intermediateSize: 128, numLayers: 3 }, source: 's', superWeights: [{ layer: 3, row: 1, col: 1 }] }] });
    assert.throws(() => resolveSuperWeights({ modelDir: dir, spec: tinySpec, superWeightsFile: registry }), /registry x\/tiny .* do not fit .*layer 3 does not exist \(the model has 3 layers\)/);
  });

  it('prefers an explicit list, then the model file, then the registry', () => {
    const list = write('list.json', { super_weights: [{ layer: 0, row: 1, col: 2 }] });
    assert.equal(resolveSuperWeights({ modelDir: dir, spec: tinySpec, superWeightsFile: list }).origin, 'user-file');
    const withOwn = path.join(root, 'with-own');
    fs.cpSync(dir, withOwn, { recursive: true });
    fs.writeFileSync(path.join(withOwn, 'super_weights.json'), JSON.stringify({ super_weights: [{ layer: 2, row: 3, col: 4 }] }));
    const own = resolveSuperWeights({ modelDir: withOwn, spec: tinySpec, superWeightsFile: registryFile });
    assert.equal(own.origin, 'model-file');
    assert.deepEqual(own.superWeights.map(coordinateId), ['2:3:4']);
    assert.equal(resolveSuperWeights({ modelDir: dir, spec: tinySpec }).origin, 'none');
  });
});
