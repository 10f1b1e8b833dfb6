// `swserve serve`: the OpenAI-compatible server. Flags override SWSERVE_* variables, which override
// the --config file, which overrides config/server.json.
import { DEVICE_CHOICES } from '../engine/device.js';
import { loadServerConfig, readDefaultConfig, setPath, settingValue } from '../config/server-config.js';
import { startServer } from '../server.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagSpec, type FlagTable } from './command-line.js';
import { WEIGHT_FLAGS } from './weight-flags.js';
import { resolveModelDir } from './model-location.js';

/** A flag that sets one dotted key of the server configuration. */
interface ConfigFlag {
  key: string;
  value: string;
  description: string;
  /** The default when config/server.json has none. */
  unset?: string;
}

const CONFIG_FLAGS: Record<string, ConfigFlag> = {
  model: { key: 'model', value: 'DIR|ORG/NAME', description: 'Model folder (Hugging Face layout) or hub repository id.' },
  port: { key: 'port', value: 'N', description: 'TCP port to listen on (0 picks a free one).' },
  host: { key: 'host', value: 'H', description: 'Address to listen on.' },
  device: { key: 'device', value: DEVICE_CHOICES, description: 'Where the model runs; CUDA and WebGPU fall back to CPU loudly when they cannot start.' },
  'api-key': { key: 'apiKey', value: 'K', description: 'Require Authorization: Bearer K on /v1 and the activation stream.', unset: 'none, no key is asked for' },
  'served-model-name': { key: 'servedModelName', value: 'NAME', description: 'The id clients send as `model`.', unset: "the model folder's name" },
  'super-weights': { key: 'superWeightsFile', value: 'FILE', description: "Super-weight coordinates (a list, or a registry file consulted before the built-in one) instead of the model's own.", unset: "the model's super_weights.json, else the registry" },
  'max-num-seqs': { key: 'limits.maxNumSeqs', value: 'N', description: 'Sequences in the engine batch at once (decoding or prefilling).' },
  'max-num-batched-tokens': { key: 'limits.maxNumBatchedTokens', value: 'N', description: 'Tokens one engine step computes: one per decoding sequence, the rest prompt chunks, so long prompts are prefilled over several steps.' },
  'max-prefill-tokens-while-decoding': { key: 'limits.maxPrefillTokensWhileDecoding', value: 'N', description: 'Prompt tokens a step may carry while sequences are decoding: bounds how much a joining prompt slows their next token (an idle engine uses the whole step budget).' },
  'max-waiting': { key: 'limits.maxWaiting', value: 'N', description: 'Sequences admitted beyond the running batch before answering 429.' },
  'max-tokens': { key: 'limits.maxTokens', value: 'N', description: "Cap on a request's max_tokens." },
  'max-n': { key: 'limits.maxN', value: 'N', description: 'Cap on n (choices per prompt).' },
  'max-body-bytes': { key: 'limits.maxBodyBytes', value: 'N', description: 'Largest request body accepted (413 beyond).' },
  instrument: { key: 'instrument', value: 'true|false', description: 'Build the graph with the super-weight switch and activation taps; false serves a plain graph that refuses switches (for overhead comparisons).' },
  'request-timeout-seconds': { key: 'connections.requestTimeoutSeconds', value: 'S', description: 'Headers and body must arrive within this time (408 beyond).' },
  'idle-timeout-seconds': { key: 'connections.idleTimeoutSeconds', value: 'S', description: 'A connection that moves no bytes this long is closed, unless its response is still being computed.' },
  'max-write-buffer-bytes': { key: 'connections.maxWriteBufferBytes', value: 'N', description: 'Bytes of a stream held for a client that does not read before it is dropped.' },
  'allowed-origins': { key: 'allowedOrigins', value: 'ORIGIN[,ORIGIN...]|*', description: 'Browser origins allowed to call the API (CORS, with preflight); * allows any.', unset: 'none, CORS is off' },
  'shutdown-grace-seconds': { key: 'shutdownGraceSeconds', value: 'S', description: 'On SIGTERM, how long in-flight requests may finish before they are ended.' },
  weights: { key: 'weights.precision', value: WEIGHT_FLAGS.weights.value, description: WEIGHT_FLAGS.weights.description, unset: WEIGHT_FLAGS.weights.defaultNote },
  'block-size': { key: 'weights.blockSize', value: 'N', description: WEIGHT_FLAGS['block-size'].description },
  'quant-scheme': { key: 'weights.scheme', value: WEIGHT_FLAGS['quant-scheme'].value, description: WEIGHT_FLAGS['quant-scheme'].description },
  'clip-outliers': { key: 'weights.clipOutliers', value: 'Z', description: WEIGHT_FLAGS['clip-outliers'].description, unset: 'no clipping' },
  compute: { key: 'weights.compute', value: WEIGHT_FLAGS.compute.value, description: WEIGHT_FLAGS.compute.description, unset: WEIGHT_FLAGS.compute.defaultNote },
  'quantized-cache': { key: 'weights.cacheDir', value: 'DIR', description: WEIGHT_FLAGS['quantized-cache'].description, unset: WEIGHT_FLAGS['quantized-cache'].defaultNote },
};

/** Boolean flags that set a config key to a fixed value. */
const SWITCH_FLAGS: Record<string, { key: string; value: boolean; description: string }> = {
  'detect-on-load': { key: 'detectOnLoad', value: true, description: 'Detect the super weights at startup when no file or registry entry knows the model.' },
  'protect-super-weights': { key: 'weights.protectSuperWeights', value: true, description: 'Keep the known super weights out of their blocks and add them back exactly (weights.protectSuperWeights, on in config/server.json).' },
  'no-protect-super-weights': { key: 'weights.protectSuperWeights', value: false, description: WEIGHT_FLAGS['no-protect-super-weights'].description },
  'quantize-lm-head': { key: 'weights.quantizeLmHead', value: true, description: WEIGHT_FLAGS['quantize-lm-head'].description },
};

export const SERVE_SUMMARY = 'the OpenAI-compatible server with per-request super-weight switches and live activation telemetry';

export function serveCommand(): CommandSpec<FlagTable> {
  const defaults = readDefaultConfig();
  const flags: Record<string, FlagSpec> = { config: { type: 'string', value: 'FILE', description: 'A JSON file of settings layered over config/server.json.' } };
  for (const [name, flag] of Object.entries(CONFIG_FLAGS)) {
    const fallback = flag.key.split('.').reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], defaults);
    const unset = fallback === undefined || (Array.isArray(fallback) && fallback.length === 0);
    flags[name] = { type: 'string', value: flag.value, description: flag.description, defaultNote: unset ? flag.unset : `${String(fallback)}, from config/server.json` };
  }
  for (const [name, flag] of Object.entries(SWITCH_FLAGS)) flags[name] = { type: 'boolean', description: flag.description };
  return {
    name: 'serve',
    summary: SERVE_SUMMARY,
    flags,
    notes: ['Settings: config/server.json < --config FILE < SWSERVE_* variables (PORT, HOST too) < flags.'],
  };
}


export async function runServe(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(serveCommand(), argv);
  if (!parsed) return;
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const flags: Record<string, unknown> = {};
  for (const [name, flag] of Object.entries(CONFIG_FLAGS)) {
    const value = values[name];
    if (typeof value === 'string') setPath(flags, flag.key, settingValue(flag.key, value));
  }
  if (values['protect-super-weights'] && values['no-protect-super-weights']) throw new UsageError('--protect-super-weights and --no-protect-super-weights contradict each other');
  for (const [name, flag] of Object.entries(SWITCH_FLAGS)) if (values[name]) setPath(flags, flag.key, flag.value);
  const loaded = loadServerConfig({ file: typeof values.config === 'string' ? values.config : undefined, env: process.env, flags });
  const config = { ...loaded, model: await resolveModelDir(loaded.model, (m) => console.error(m)) };
  const server = await startServer(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.error(`${signal}: finishing in-flight requests (up to ${config.shutdownGraceSeconds}s)`);
    server.shutdown().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(`shutdown failed: ${err.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    await server.ready;
  } catch {
    await server.shutdown();
    process.exit(1);
  }
}
