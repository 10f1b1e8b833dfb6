// Which super weights are in force for a loaded model, and where each came from: an explicit
// `--super-weights FILE` list, the model's own super_weights.json, the registry (a user registry file
// first, then the built-in one), or nothing (then detection may run on load).
import fs from 'node:fs';
import path from 'node:path';
import type { ModelSpec } from '../model/hf-config.js';
import { modelFolderName } from '../model/hub-cache.js';
import { MODEL_SUPER_WEIGHTS_FILE, readModelSuperWeights } from './model-super-weights.js';
import { BUILTIN_REGISTRY_FILE, matchRegistry, parseRegistry, readRegistryFile, type RegistryEntry, type SourcedSuperWeight } from './registry.js';
import { coordinateProblems } from '../model/switch-plan.js';
import { isPlainObject } from '../util/plain-object.js';

export type SuperWeightsOrigin = 'user-file' | 'model-file' | 'registry' | 'detected' | 'none';

export interface SuperWeightsInForce {
  origin: SuperWeightsOrigin;
  /** One line for logs and GET /v1/super_weights, e.g. "registry huggyllama/llama-7b (matched by id)". */
  description: string;
  superWeights: SourcedSuperWeight[];
}

export interface ResolveOptions {
  modelDir: string;
  spec: ModelSpec;
  /** A plain list ({"super_weights": [...]}) used as is, or a registry file ({"models": [...]}) consulted first. */
  superWeightsFile?: string;
  /** Other names the model goes by (the Hugging Face id it was fetched as, the served name). */
  aliases?: string[];
}

export function resolveSuperWeights(options: ResolveOptions): SuperWeightsInForce {
  const { modelDir, spec, superWeightsFile } = options;
  const userRegistry: RegistryEntry[] = [];
  if (superWeightsFile !== undefined) {
    const raw: unknown = JSON.parse(fs.readFileSync(superWeightsFile, 'utf8'));
    if (isPlainObject(raw) && 'models' in raw) {
      userRegistry.push(...parseRegistry(raw, superWeightsFile));
    } else {
      const list = readModelSuperWeights(path.dirname(superWeightsFile), path.basename(superWeightsFile));
      const source = describeFile(superWeightsFile, raw);
      return checked({ origin: 'user-file', description: source, superWeights: list.map((c) => ({ ...c, source })) }, spec, modelDir);
    }
  }
  const own = readModelSuperWeights(modelDir);
  if (own.length > 0) {
    const file = path.join(modelDir, MODEL_SUPER_WEIGHTS_FILE);
    const source = describeFile(file, JSON.parse(fs.readFileSync(file, 'utf8')));
    return checked({ origin: 'model-file', description: source, superWeights: own.map((c) => ({ ...c, source })) }, spec, modelDir);
  }
  const names = [...(options.aliases ?? []), modelFolderName(modelDir)];
  const match = matchRegistry([...userRegistry, ...readRegistryFile(BUILTIN_REGISTRY_FILE)], spec, names);
  if (match === null) return { origin: 'none', description: 'no super weights known for this model', superWeights: [] };
  const how = match.by === 'id' ? 'matched by id' : match.by === 'fine-tune' ? 'matched as a listed fine-tune' : 'matched by architecture and shapes';
  return checked({ origin: 'registry', description: `registry ${match.entry.id} (${how})`, superWeights: match.superWeights }, spec, modelDir);
}

/** Refuses coordinates outside the model, naming where they came from. */
export function checked(inForce: SuperWeightsInForce, spec: ModelSpec, modelDir: string): SuperWeightsInForce {
  const problems = coordinateProblems(inForce.superWeights, spec);
  if (problems.length > 0) throw new Error(`super weights from ${inForce.description} do not fit ${modelDir}: ${problems.join('; ')}`);
  return inForce;
}

/** "file X", with the file's own `source` note when it has one (the demo model's says how its weight was made). */
function describeFile(file: string, raw: unknown): string {
  return isPlainObject(raw) && typeof raw.source === 'string' ? `file ${file}: ${raw.source}` : `file ${file}`;
}
