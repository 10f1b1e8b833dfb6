// The super weights shipped beside a model (`super_weights.json`), until the registry knows it.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { SuperWeightCoordinate } from '../model/switch-plan.js';
import { describeZodError } from '../util/zod-issue.js';

export const MODEL_SUPER_WEIGHTS_FILE = 'super_weights.json';

const coordinate = z.object({ layer: z.number().int().min(0), row: z.number().int().min(0), col: z.number().int().min(0) });
const fileSchema = z.looseObject({ super_weights: z.array(z.looseObject(coordinate.shape)) });

/** Coordinates listed next to the model (or in `fileName` there), or none when the file is absent. */
export function readModelSuperWeights(modelDir: string, fileName = MODEL_SUPER_WEIGHTS_FILE): SuperWeightCoordinate[] {
  const file = path.join(modelDir, fileName);
  if (!fs.existsSync(file)) return [];
  const parsed = fileSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file}: ${describeZodError(parsed.error)}`);
  return parsed.data.super_weights.map(({ layer, row, col }) => ({ layer, row, col }));
}
