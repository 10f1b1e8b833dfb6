// The quantized copy on disk: made once, found again without quantizing (the data file is not
// rewritten), a new copy for other settings or a changed checkpoint, a damaged copy detected and
// rebuilt, and the model folder left untouched (it may be read-only).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openCheckpoint } from '../../src/model/checkpoint.js';
import { openQuantizedWeights, type QuantizedWeights } from '../../src/model/quantize/quantized-cache.js';
import { quantizationSettings, type WeightOptions } from '../../src/model/quantize/weight-format.js';
import { buildTinyCheckpoint, type TinyCheckpoint } from '../helpers/tiny-checkpoint.js';

const SW = { layer: 1, row: 7, col: 33 };
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'swserve-qcache-'));
const cacheDir = path.join(root, 'cache');
let ckpt: TinyCheckpoint;

const OPTIONS: WeightOptions = { precision: 'int4', blockSize: 32, scheme: 'symmetric', protectSuperWeights: true, quantizeLmHead: false };

function open(options: Partial<WeightOptions> = {}, dir = ckpt.dir, log?: (m: string) => void): QuantizedWeights {
  return openQuantizedWeights(openCheckpoint(dir), quantizationSettings({ ...OPTIONS, ...options }, [SW]), { cacheDir, log });
}

function dataFile(q: QuantizedWeights): string {
  return path.join(q.dir, q.manifest.dataFile);
}

before(() => {
  ckpt = buildTinyCheckpoint(path.join(root, 'model'), { arch: 'llama', numLayers: 3, seed: 3, plantedSuperWeights: [SW] });
});
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('quantized copies in the cache', () => {
  it('are made once and then loaded without quantizing', () => {
    const modelFiles = fs.readdirSync(ckpt.dir).sort();
    const first = open();
    assert.equal(first.cache.state, 'built');
    const written = fs.statSync(dataFile(first));
    const second = open();
    assert.equal(second.cache.state, 'hit');
    assert.equal(second.dir, first.dir);
    const after = fs.statSync(dataFile(second));
    assert.deepEqual([after.ino, after.mtimeMs], [written.ino, written.mtimeMs], 'the data file was not rewritten');
    assert.deepEqual(second.manifest, first.manifest);
    assert.deepEqual(fs.readdirSync(ckpt.dir).sort(), modelFiles, 'nothing was written into the model folder');
  });

  it('are keyed by every setting', () => {
    const base = open();
    const dirs = new Set([base.dir]);
    for (const options of [{ blockSize: 64 }, { precision: 'int8' as const }, { scheme: 'asymmetric' as const }, { protectSuperWeights: false }, { clipOutliers: 4 }, { quantizeLmHead: true }]) {
      const q = open(options);
      assert.equal(q.cache.state, 'built', JSON.stringify(options));
      dirs.add(q.dir);
    }
    assert.equal(dirs.size, 7);
  });

  it('are made again when the checkpoint changes', () => {
    const copy = path.join(root, 'changed');
    fs.cpSync(ckpt.dir, copy, { recursive: true });
    const before = open({}, copy);
    const file = path.join(copy, 'model.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0x01;
    fs.writeFileSync(file, bytes);
    const after = open({}, copy);
    assert.equal(after.cache.state, 'built');
    assert.notEqual(after.dir, before.dir);
  });

  it('are rebuilt when the data no longer matches its checksum', () => {
    const good = open({ blockSize: 16 });
    const file = dataFile(good);
    const bytes = fs.readFileSync(file);
    bytes[good.manifest.quantized[0]!.codes.offset + 5] ^= 0xff;
    fs.writeFileSync(file, bytes);
    const messages: string[] = [];
    const rebuilt = open({ blockSize: 16 }, ckpt.dir, (m) => messages.push(m));
    assert.equal(rebuilt.cache.state, 'rebuilt');
    assert.match(rebuilt.cache.reason!, /CRC-32/);
    assert.ok(messages.some((m) => m.includes('unusable')), messages.join('\n'));
    assert.deepEqual(fs.readFileSync(dataFile(rebuilt)).subarray(0, 4096), fs.readFileSync(file).subarray(0, 4096));
    assert.equal(open({ blockSize: 16 }).cache.state, 'hit');
  });

  it('are rebuilt when the data file is cut short or the manifest is damaged', () => {
    const good = open({ blockSize: 128 });
    fs.truncateSync(dataFile(good), good.manifest.dataBytes - 1);
    const truncated = open({ blockSize: 128 });
    assert.equal(truncated.cache.state, 'rebuilt');
    assert.match(truncated.cache.reason!, /bytes, the manifest says/);
    fs.writeFileSync(path.join(truncated.dir, 'manifest.json'), '{"format": 1');
    const damaged = open({ blockSize: 128 });
    assert.equal(damaged.cache.state, 'rebuilt');
    assert.match(damaged.cache.reason!, /not valid JSON/);
  });

  it('leave no partial copy behind', () => {
    assert.deepEqual(fs.readdirSync(cacheDir).filter((d) => d.includes('.partial-')), []);
  });
});
