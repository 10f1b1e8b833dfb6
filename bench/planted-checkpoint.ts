// Writes the planted checkpoint of the README's quantization study: a random 3-layer Llama (hidden 64,
// intermediate 512) whose super weight at 1:7:33 is 100x the typical weight, with its super_weights.json.
// Usage: node dist/bench/planted-checkpoint.js DIR
import fs from 'node:fs';
import path from 'node:path';
import { buildTinyCheckpoint } from '../test/helpers/tiny-checkpoint.js';

// Random weights have std 0.08 (tiny-checkpoint's default weightScale); 8 is 100x that.
const SUPER_WEIGHT = { layer: 1, row: 7, col: 33, strength: 8 };

const dir = process.argv[2];
if (!dir) throw new Error('usage: node dist/bench/planted-checkpoint.js DIR');
buildTinyCheckpoint(dir, { arch: 'llama', numLayers: 3, intermediateSize: 512, numKvHeads: 2, seed: 23, maxPositionEmbeddings: 512, plantedSuperWeights: [SUPER_WEIGHT] });
const { layer, row, col } = SUPER_WEIGHT;
fs.writeFileSync(path.join(dir, 'super_weights.json'), JSON.stringify({ super_weights: [{ layer, row, col }] }, null, 2));
process.stdout.write(`${dir}: planted super weight ${layer}:${row}:${col} = ${SUPER_WEIGHT.strength}\n`);
