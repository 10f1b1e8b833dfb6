// POST /v1/super_weights/detect (swserve's own): data-free detection on the served model.
import { z } from 'zod';

// Each prompt is one prefill per detection pass: keep one call's work bounded.
export const MAX_DETECT_PROMPTS = 8;
// Far above any published model's count (Phi-3-mini: 6); every find costs a few passes.
export const MAX_DETECT_SUPER_WEIGHTS = 64;

export const superWeightsDetectSchema = z.looseObject({
  model: z.string().min(1),
  prompt: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(MAX_DETECT_PROMPTS)]).nullish(),
  spike_ratio: z.number().positive().nullish(),
  min_magnitude: z.number().min(0).nullish(),
  max_super_weights: z.number().int().min(1).max(MAX_DETECT_SUPER_WEIGHTS).nullish(),
  /** Include the detection figure as an SVG string (`chart_svg`). */
  chart: z.boolean().nullish(),
});

export type SuperWeightsDetectRequest = z.infer<typeof superWeightsDetectSchema>;
