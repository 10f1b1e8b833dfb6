// The server's settings: config/server.json, then an optional --config file, then SWSERVE_* and
// PORT/HOST environment variables, then command-line flags; parsed once with zod at startup.
import fs from 'node:fs';
import { z } from 'zod';
import { isPlainObject } from '../util/plain-object.js';
import { describeZodError } from '../util/zod-issue.js';
import { COMPUTE_PRECISIONS, QUANT_SCHEMES, WEIGHTS_PRECISIONS } from '../model/quantize/weight-format.js';

const limitsSchema = z
  .strictObject({
    /** Sequences in the engine's batch at once (vLLM's --max-num-seqs). */
    maxNumSeqs: z.number().int().positive(),
    /** Sequences admitted beyond the running batch before answering 429. */
    maxWaiting: z.number().int().min(0),
    /** Cap on a request's max_tokens. */
    maxTokens: z.number().int().positive(),
    /** Cap on n (choices per prompt). */
    maxN: z.number().int().positive(),
    /** Tokens one engine step computes: a token per decoding sequence, the rest prompt chunks (vLLM's --max-num-batched-tokens). */
    maxNumBatchedTokens: z.number().int().positive(),
    /** Prompt tokens a step may carry while sequences decode (bounds how much a joining prompt slows them). */
    maxPrefillTokensWhileDecoding: z.number().int().positive(),
    maxBodyBytes: z.number().int().positive(),
  })
  .refine((l) => l.maxNumBatchedTokens >= l.maxNumSeqs, {
    message: 'maxNumBatchedTokens must be at least maxNumSeqs (every decoding sequence takes a token of each step)',
    path: ['maxNumBatchedTokens'],
  });

const connectionsSchema = z.strictObject({
  /** Headers and body must arrive within this many seconds (408 otherwise): a dripped body is not held. */
  requestTimeoutSeconds: z.number().positive(),
  /** A connection that moves no bytes for this long is closed, unless the server is still computing its response. */
  idleTimeoutSeconds: z.number().positive(),
  /** Bytes of a stream the server holds for a client that does not read (beyond the kernel's buffers) before dropping it. */
  maxWriteBufferBytes: z.number().int().positive(),
});

const telemetrySchema = z.strictObject({
  /** Clients the /v1/activations WebSocket admits at once. */
  maxClients: z.number().int().min(0),
  /** Frames each WebSocket client may have waiting; beyond that its oldest are dropped. */
  clientBufferFrames: z.number().int().positive(),
  /**
   * config/prometheus/alerts.yml fires when original traffic's super activation stays below this share of
   * the float32 reference. 0.5 sits between a healthy int4 copy (within a few percent, README) and a
   * zeroed super weight (over 90% down on the demo model).
   */
  superActivationMinShare: z.number().gt(0).max(1),
  /** ...and at most this many bytes waiting, in the server and the socket together. */
  clientBufferBytes: z.number().int().positive(),
});

// Overrides of the detection defaults in src/superweights/detection.ts (where their sources are cited).
const detectionSchema = z.strictObject({
  prompts: z.array(z.string().min(1)).min(1).optional(),
  /** A layer spikes when its max |down_proj input| and |output| reach this multiple of the median over layers... */
  spikeRatio: z.number().positive().optional(),
  /** ...and this magnitude. */
  minMagnitude: z.number().min(0).optional(),
  maxSuperWeights: z.number().int().positive().optional(),
});

// How the weights are stored and run (src/model/quantize/weight-format.ts explains each setting).
const weightsSchema = z.strictObject({
  /** Absent: float32 on CPU, float16 on CUDA. */
  precision: z.enum(WEIGHTS_PRECISIONS).optional(),
  blockSize: z
    .number()
    .int()
    .min(16)
    .refine((n) => (n & (n - 1)) === 0, 'expected a power of two'),
  scheme: z.enum(QUANT_SCHEMES),
  protectSuperWeights: z.boolean(),
  quantizeLmHead: z.boolean(),
  clipOutliers: z.number().positive().optional(),
  compute: z.enum(COMPUTE_PRECISIONS).optional(),
  cacheDir: z.string().min(1).optional(),
});

export const serverConfigSchema = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(0).max(65535),
  model: z.string().min(1),
  /** The id clients send as `model`; defaults to the model folder's name. */
  servedModelName: z.string().min(1).optional(),
  device: z.string().regex(/^(cpu|cuda(:\d+)?|webgpu)$/, 'expected cpu, cuda, cuda:N or webgpu'),
  apiKey: z.string().min(1).optional(),
  limits: limitsSchema,
  connections: connectionsSchema,
  shutdownGraceSeconds: z.number().min(0),
  pingIntervalSeconds: z.number().positive(),
  /** Build the graph with the super-weight switch and activation taps; off serves a plain graph (overhead comparisons). */
  instrument: z.boolean(),
  /** Detect super weights at startup when neither files nor the registry know the model. */
  detectOnLoad: z.boolean(),
  detection: detectionSchema.optional(),
  /** A JSON file of super-weight coordinates to use instead of the model's own, or a registry file consulted before the built-in one. */
  superWeightsFile: z.string().optional(),
  telemetry: telemetrySchema,
  weights: weightsSchema,
  /** Browser origins allowed to call the API (CORS); `*` for any; none by default. */
  allowedOrigins: z.array(z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, 'expected "*" or an origin such as https://app.example.com (scheme and host, no path)')),
});

export type ServerConfig = z.infer<typeof serverConfigSchema>;

export const DEFAULT_CONFIG_FILE = new URL('../../../config/server.json', import.meta.url);

type Layer = Record<string, unknown>;

/** Environment variables that override settings (limits as SWSERVE_MAX_NUM_SEQS etc.). */
const ENV_KEYS: Record<string, string> = {
  PORT: 'port',
  HOST: 'host',
  SWSERVE_PORT: 'port',
  SWSERVE_HOST: 'host',
  SWSERVE_MODEL: 'model',
  SWSERVE_SERVED_MODEL_NAME: 'servedModelName',
  SWSERVE_DEVICE: 'device',
  SWSERVE_API_KEY: 'apiKey',
  SWSERVE_SUPER_WEIGHTS: 'superWeightsFile',
  SWSERVE_DETECT_ON_LOAD: 'detectOnLoad',
  SWSERVE_INSTRUMENT: 'instrument',
  SWSERVE_MAX_NUM_SEQS: 'limits.maxNumSeqs',
  SWSERVE_MAX_NUM_BATCHED_TOKENS: 'limits.maxNumBatchedTokens',
  SWSERVE_MAX_PREFILL_TOKENS_WHILE_DECODING: 'limits.maxPrefillTokensWhileDecoding',
  SWSERVE_MAX_WAITING: 'limits.maxWaiting',
  SWSERVE_MAX_TOKENS: 'limits.maxTokens',
  SWSERVE_MAX_N: 'limits.maxN',
  SWSERVE_MAX_BODY_BYTES: 'limits.maxBodyBytes',
  SWSERVE_REQUEST_TIMEOUT_SECONDS: 'connections.requestTimeoutSeconds',
  SWSERVE_IDLE_TIMEOUT_SECONDS: 'connections.idleTimeoutSeconds',
  SWSERVE_MAX_WRITE_BUFFER_BYTES: 'connections.maxWriteBufferBytes',
  SWSERVE_SHUTDOWN_GRACE_SECONDS: 'shutdownGraceSeconds',
  SWSERVE_TELEMETRY_MAX_CLIENTS: 'telemetry.maxClients',
  SWSERVE_TELEMETRY_CLIENT_BUFFER_FRAMES: 'telemetry.clientBufferFrames',
  SWSERVE_SUPER_ACTIVATION_MIN_SHARE: 'telemetry.superActivationMinShare',
  SWSERVE_WEIGHTS: 'weights.precision',
  SWSERVE_BLOCK_SIZE: 'weights.blockSize',
  SWSERVE_QUANT_SCHEME: 'weights.scheme',
  SWSERVE_PROTECT_SUPER_WEIGHTS: 'weights.protectSuperWeights',
  SWSERVE_QUANTIZE_LM_HEAD: 'weights.quantizeLmHead',
  SWSERVE_CLIP_OUTLIERS: 'weights.clipOutliers',
  SWSERVE_COMPUTE: 'weights.compute',
  SWSERVE_QUANTIZED_CACHE: 'weights.cacheDir',
  SWSERVE_TELEMETRY_CLIENT_BUFFER_BYTES: 'telemetry.clientBufferBytes',
  SWSERVE_ALLOWED_ORIGINS: 'allowedOrigins',
};

export function envLayer(env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(layer, key, settingValue(key, value));
  }
  return layer;
}

/** Flags use the same dotted keys as the file: `--port 9000`, `--limits.maxNumSeqs 4`. */
export function setPath(target: Layer, dotted: string, value: unknown): void {
  const keys = dotted.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Layer;
  node[keys[keys.length - 1]!] = value;
}

// Settings that are text even when they look like numbers (an API key of digits is still a key).
const TEXT_SETTINGS = new Set(['host', 'model', 'servedModelName', 'device', 'apiKey', 'superWeightsFile', 'weights.precision', 'weights.scheme', 'weights.compute', 'weights.cacheDir']);

// Settings that are lists, given as text separated by commas.
const LIST_SETTINGS = new Set(['allowedOrigins']);

/** A setting given as text (a variable or a flag) as the value the schema expects. */
export function settingValue(key: string, value: string): unknown {
  if (LIST_SETTINGS.has(key)) return value.split(',').map((v) => v.trim()).filter((v) => v !== '');
  return TEXT_SETTINGS.has(key) ? value : coerce(value);
}

function coerce(value: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  if (value === 'true' || value === 'false') return value === 'true';
  return value;
}

/** config/server.json as it is, for showing defaults (e.g. in --help). */
export function readDefaultConfig(): Layer {
  return readJson(DEFAULT_CONFIG_FILE);
}

export function loadServerConfig(layers: { file?: string; env: NodeJS.ProcessEnv; flags: Layer }): ServerConfig {
  const base = readDefaultConfig();
  const file = layers.file ? readJson(layers.file) : {};
  const merged = [file, envLayer(layers.env), layers.flags].reduce(deepMerge, base);
  const parsed = serverConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(`configuration: ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}

function readJson(file: string | URL): Layer {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Layer;
  } catch (err) {
    throw new Error(`configuration file ${String(file)}: ${(err as Error).message}`);
  }
}

function deepMerge(a: Layer, b: Layer): Layer {
  const out: Layer = { ...a };
  for (const [key, value] of Object.entries(b)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}
