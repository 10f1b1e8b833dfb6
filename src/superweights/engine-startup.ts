// Starts the engine worker with the super weights in force: resolved from files and the registry,
// or, for a model nobody lists, detected on load and the engine restarted with what was found
// (the engine takes its known super weights at load, so they show in taps and "off" switches them).
import { EngineClient } from '../engine/engine-client.js';
import type { EngineOptions } from '../engine/engine-core.js';
import { openCheckpoint } from '../model/checkpoint.js';
import { coordinateId } from '../model/switch-plan.js';
import { DEFAULT_DETECTION_OPTIONS, detectSuperWeights, type DetectionOptions, type DetectionResult } from './detection.js';
import { checked, resolveSuperWeights, type SuperWeightsInForce } from './resolve-super-weights.js';

export interface SuperWeightStartOptions {
  engine: Omit<EngineOptions, 'knownSuperWeights' | 'onWarning' | 'onLog'>;
  superWeightsFile?: string;
  /** Other names the model goes by, for the registry (e.g. the Hugging Face id it was fetched as). */
  aliases?: string[];
  /** Detect when neither files nor the registry know the model. */
  detectOnLoad: boolean;
  detection?: Partial<DetectionOptions>;
  onWarning?: (message: string) => void;
  log?: (message: string) => void;
}

export interface StartedEngine {
  engine: EngineClient;
  superWeights: SuperWeightsInForce;
  /** Present when detection ran on load. */
  detection?: DetectionResult;
}

export async function startEngineWithSuperWeights(options: SuperWeightStartOptions): Promise<StartedEngine> {
  const { modelDir } = options.engine;
  // Opening the checkpoint (headers only) says what is wrong with a bad folder before a worker starts.
  const { spec } = openCheckpoint(modelDir);
  const inForce = resolveSuperWeights({ modelDir, spec, superWeightsFile: options.superWeightsFile, aliases: options.aliases });
  const start = (known: SuperWeightsInForce): Promise<EngineClient> =>
    EngineClient.start({ ...options.engine, knownSuperWeights: known.superWeights.map(({ layer, row, col }) => ({ layer, row, col })) }, options.onWarning, options.log);
  const engine = await start(inForce);
  if (inForce.origin !== 'none' || !options.detectOnLoad) return { engine, superWeights: inForce };

  options.log?.(`no super weights known for ${modelDir}; detecting`);
  const detectionOptions = { ...DEFAULT_DETECTION_OPTIONS, ...options.detection };
  let detection: DetectionResult;
  try {
    detection = await detectSuperWeights(engine, detectionOptions);
  } catch (err) {
    await engine.close();
    throw err;
  }
  if (detection.superWeights.length === 0) {
    options.log?.(`detection found no super weights (${detection.stop})`);
    return { engine, superWeights: { ...inForce, description: 'none known; detection on load found none' }, detection };
  }
  const source = `detected on load (prompt ${JSON.stringify(detectionOptions.prompts[0])}${detectionOptions.prompts.length > 1 ? ` and ${detectionOptions.prompts.length - 1} more` : ''})`;
  const detected = checked(
    { origin: 'detected', description: source, superWeights: detection.superWeights.map(({ layer, row, col }) => ({ layer, row, col, source })) },
    spec,
    modelDir,
  );
  options.log?.(`detected ${detected.superWeights.map(coordinateId).join(', ')}; restarting the engine with them`);
  await engine.close();
  return { engine: await start(detected), superWeights: detected, detection };
}
