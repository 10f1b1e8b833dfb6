// The registry of published super-weight coordinates (config/super-weights-registry.json, plus any
// registry file a user adds): a model is matched by its Hugging Face id, a listed fine-tune id, or,
// when the id is unknown, by architecture and shapes.
import fs from 'node:fs';
import { z } from 'zod';
import type { ModelSpec } from '../model/hf-config.js';
import type { SuperWeightCoordinate } from '../model/switch-plan.js';
import { describeZodError } from '../util/zod-issue.js';

export const BUILTIN_REGISTRY_FILE = new URL('../../../config/super-weights-registry.json', import.meta.url);

const index = z.number().int().min(0);
const shapesSchema = z.strictObject({
  architecture: z.string().min(1),
  hiddenSize: z.number().int().positive(),
  intermediateSize: z.number().int().positive(),
  numLayers: z.number().int().positive(),
  vocabSize: z.number().int().positive().optional(),
  maxPositionEmbeddings: z.number().int().positive().optional(),
  ropeTheta: z.number().positive().optional(),
});

const entrySchema = z.strictObject({
  id: z.string().min(1),
  fineTunes: z.array(z.string().min(1)).optional(),
  shapes: shapesSchema,
  source: z.string().min(1),
  superWeights: z.array(z.strictObject({ layer: index, row: index, col: index, source: z.string().min(1).optional() })).min(1),
});

export const registryFileSchema = z.looseObject({ models: z.array(entrySchema) });

export type RegistryEntry = z.infer<typeof entrySchema>;
export type RegistryShapes = z.infer<typeof shapesSchema>;

/** A coordinate with where it came from (a paper, a file, a detection run). */
export interface SourcedSuperWeight extends SuperWeightCoordinate {
  source: string;
}

export interface RegistryMatch {
  entry: RegistryEntry;
  by: 'id' | 'fine-tune' | 'shapes';
  superWeights: SourcedSuperWeight[];
}

// The fields a coordinate's meaning depends on: an id match with other values is a different model.
const CORE_SHAPE_FIELDS = ['architecture', 'hiddenSize', 'intermediateSize', 'numLayers'] as const;

export function parseRegistry(raw: unknown, file: string): RegistryEntry[] {
  const parsed = registryFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`super-weight registry ${file}: ${describeZodError(parsed.error)}`);
  }
  return parsed.data.models;
}

export function readRegistryFile(file: string | URL): RegistryEntry[] {
  return parseRegistry(JSON.parse(fs.readFileSync(file, 'utf8')), String(file));
}

/**
 * The entry for the model by name (config.json's _name_or_path, or any of `names`: its folder, the id
 * it was fetched as), else the one whose shapes all equal the model's. Earlier entries win, so user files go first.
 * Throws when an id matches but the shapes do not, or when two entries match by shapes alone.
 */
export function matchRegistry(entries: readonly RegistryEntry[], spec: ModelSpec, names: readonly string[]): RegistryMatch | null {
  const wanted = new Set([spec.nameOrPath, ...names].filter((n): n is string => n !== undefined && n !== '').map(lastSegment));
  for (const entry of entries) {
    const by = wanted.has(lastSegment(entry.id)) ? 'id' : (entry.fineTunes ?? []).some((f) => wanted.has(lastSegment(f))) ? 'fine-tune' : null;
    if (by === null) continue;
    const differing = CORE_SHAPE_FIELDS.filter((field) => entry.shapes[field] !== specValue(spec, field));
    if (differing.length > 0) {
      const describe = (field: (typeof CORE_SHAPE_FIELDS)[number]): string => `${field} ${specValue(spec, field)} (registry: ${entry.shapes[field]})`;
      throw new Error(`the model is named like ${entry.id} but its config differs: ${differing.map(describe).join(', ')}; its super weights would not fit`);
    }
    return { entry, by, superWeights: sourced(entry, by) };
  }
  const byShapes = entries.filter((entry) => (Object.keys(entry.shapes) as (keyof RegistryShapes)[]).every((field) => entry.shapes[field] === specValue(spec, field)));
  if (byShapes.length > 1) {
    throw new Error(`registry entries ${byShapes.map((e) => e.id).join(' and ')} both match the model's shapes; set _name_or_path in config.json or pass --super-weights FILE`);
  }
  return byShapes.length === 1 ? { entry: byShapes[0]!, by: 'shapes', superWeights: sourced(byShapes[0]!, 'shapes') } : null;
}

function sourced(entry: RegistryEntry, by: RegistryMatch['by']): SourcedSuperWeight[] {
  const how = by === 'id' ? '' : by === 'fine-tune' ? ', as a listed fine-tune of it' : ', matched by architecture and shapes';
  return entry.superWeights.map(({ layer, row, col, source }) => ({ layer, row, col, source: `registry ${entry.id}${how}: ${source ?? entry.source}` }));
}

function specValue(spec: ModelSpec, field: keyof RegistryShapes): string | number {
  return spec[field];
}

/** "meta-llama/Llama-2-7b-hf", "/models/Llama-2-7b-hf/" and "llama-2-7b-hf" all name the same model. */
function lastSegment(name: string): string {
  return name.replace(/[\\/]+$/, '').split(/[\\/]/).pop()!.toLowerCase();
}
