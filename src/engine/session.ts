// The only file that touches onnxruntime: builds the decoder graph for the chosen device, creates the
// session (falling back to CPU loudly when CUDA or WebGPU cannot start), and runs one batch step. The
// KV cache lives on the host (kv-cache.ts): each step sends its rows' views and gets back only the new
// tokens' keys and values, on every device.
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from '../model/checkpoint.js';
import { buildServingGraph } from '../model/serving-graph.js';
import { DECODER_OPSET } from '../model/decoder-graph.js';
import { GraphBuilder } from '../model/onnx-graph.js';
import type { ComputeDtype, QuantizedGraphWeights } from '../model/graph-context.js';
import type { DeviceRequest } from './device.js';
import { withDummyRowsForEmptyGroups } from './empty-group-rows.js';
import { decodePastKey, decodePastValue, INPUT, OUTPUT, prefillPastKey, prefillPastValue, presentKey, presentValue } from '../model/graph-io.js';

/** KV elements as the graph holds them: float32, or float16 bits on CUDA. */
export type KvData = Float32Array | Uint16Array;

export interface LayerKv {
  key: KvData;
  value: KvData;
}

/** One step's inputs as plain typed arrays (shapes and meaning in graph-io.ts). */
export interface StepFeeds {
  /** N: flat tokens, decode rows' first. */
  tokens: number;
  decodeRows: number;
  prefillRows: number;
  /** Tp: the longest prefill chunk (1 when there are no prefill rows). */
  chunk: number;
  /** P: the cache's slot capacity. */
  slots: number;
  inputIds: BigInt64Array;
  positionIds: BigInt64Array;
  decodePastLengths: BigInt64Array;
  prefillPastLengths: BigInt64Array;
  prefillTokenIndex: BigInt64Array;
  prefillTokenMask: Uint8Array;
  prefillRealIndex: BigInt64Array;
  logitsIndex: BigInt64Array;
  /** Views of the cache rows of each group, per layer. */
  past: { decode: LayerKv[]; prefill: LayerKv[] };
  switches: SwitchInputs;
}

export interface SwitchInputs {
  /** [N, K] */
  factors: Float32Array;
  rows: BigInt64Array;
  cols: BigInt64Array;
  /** [L] */
  widths: BigInt64Array;
}

/** Per token and layer ([N, L]), and per token and switched coordinate ([N, K]). */
export interface StepTaps {
  inMax: Float32Array;
  inChannel: BigInt64Array;
  outMax: Float32Array;
  outChannel: BigInt64Array;
  switchValues: Float32Array;
}

export interface StepFetches {
  /** Empty for a truncated graph (`layers`), which has only taps. */
  logits: Float32Array;
  /** log(sum(exp(logits))) per logits row. */
  logitsLogSumExp: Float32Array;
  /** Per layer, the step's new keys and values [N, kvH, D]. */
  present: LayerKv[];
  /** Absent on a graph built without instrumentation, or when the step did not ask for them. */
  taps?: StepTaps;
}

export interface SessionInfo {
  device: 'cpu' | 'cuda' | 'webgpu';
  deviceId?: number;
  computeDtype: ComputeDtype;
  instrumented: boolean;
  /** Why a requested CUDA or WebGPU device is not in use, or why it computes in float32. */
  fallbackReason?: string;
  graphNodes: number;
  /** Decoder layers the graph holds (fewer than the model's only for reference runs of early layers). */
  layers: number;
  /** Milliseconds to build the graph and to create the session (weights read and prepacked). */
  loadMs: { graph: number; session: number };
}

export interface ModelSession {
  info: SessionInfo;
  /** Runs one step; the taps are copied out only when `withTaps` (they are computed either way). */
  run(feeds: StepFeeds, withTaps: boolean): Promise<StepFetches>;
  release(): Promise<void>;
}

export interface ModelSessionOptions {
  device: DeviceRequest;
  instrument: boolean;
  /** float32 on CPU, float16 on CUDA and on WebGPU devices with shader-f16, unless set (tests run the float16 graph on CPU). */
  computeDtype?: ComputeDtype;
  /** Threads for one operator; onnxruntime's default uses every core. */
  intraOpThreads?: number;
  /** Linear layers from a quantized copy (CPU only: MatMulNBits' fast kernels and our layout are the CPU's). */
  quantized?: QuantizedGraphWeights;
  /** Only the first `layers` layers, taps but no logits (reference runs of early layers). */
  layers?: number;
  onWarning?: (message: string) => void;
}

type Provider = 'cpu' | 'cuda' | 'webgpu';

export async function createModelSession(checkpoint: Checkpoint, options: ModelSessionOptions): Promise<ModelSession> {
  const { device } = options;
  if (device.kind !== 'cpu' && options.quantized) throw new Error('quantized weights (--weights int8|int4) run on CPU only; use --device cpu');
  if (device.kind === 'cpu') return open(checkpoint, options, 'cpu');
  const name = device.kind === 'cuda' ? `CUDA device ${device.deviceId}` : 'WebGPU';
  try {
    return await openOnDevice(checkpoint, options, device.kind, device.kind === 'cuda' ? device.deviceId : 0);
  } catch (err) {
    const reason = `${name} could not start: ${(err as Error).message.split('\n')[0]}`;
    options.onWarning?.(`${reason}; falling back to CPU`);
    const session = await open(checkpoint, options, 'cpu');
    session.info.fallbackReason = reason;
    return session;
  }
}

async function openOnDevice(checkpoint: Checkpoint, options: ModelSessionOptions, provider: 'cuda' | 'webgpu', deviceId: number): Promise<ModelSession> {
  if (provider === 'cuda' || options.computeDtype) return open(checkpoint, options, provider, deviceId);
  // float16 where the adapter has shader-f16; onnxruntime would otherwise run those nodes on the CPU.
  if (await webgpuHasFloat16()) return open(checkpoint, { ...options, computeDtype: 'float16' }, provider);
  const session = await open(checkpoint, { ...options, computeDtype: 'float32' }, provider);
  session.info.fallbackReason = 'the WebGPU adapter has no shader-f16: computing in float32';
  options.onWarning?.(session.info.fallbackReason);
  return session;
}

/** A one-node float16 graph that may not fall back to the CPU: it loads only where WebGPU computes float16. */
async function webgpuHasFloat16(): Promise<boolean> {
  const g = new GraphBuilder();
  const x = g.input('x', 'float16', [2, 2]);
  g.output(g.op('MatMul', [x, x]), 'y', 'float16', [2, 2]);
  try {
    const probe = await ort.InferenceSession.create(g.toModelBytes({ opset: DECODER_OPSET, producerName: 'swserve' }), {
      executionProviders: ['webgpu'],
      extra: { session: { disable_cpu_ep_fallback: '1' } },
    });
    await probe.release();
    return true;
  } catch {
    return false;
  }
}

async function open(checkpoint: Checkpoint, options: ModelSessionOptions, device: Provider, deviceId = 0): Promise<ModelSession> {
  const started = performance.now();
  const graph = buildServingGraph(checkpoint, {
    computeDtype: options.computeDtype ?? (device === 'cuda' ? 'float16' : 'float32'),
    instrument: options.instrument,
    quantized: options.quantized,
    layers: options.layers,
  });
  const { computeDtype } = graph;
  const built = performance.now();
  const session = await ort.InferenceSession.create(graph.bytes, {
    executionProviders: device === 'cuda' ? [{ name: 'cuda', deviceId }] : [device],
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    // The graph is held in memory; its external data lives in the checkpoint folder (or the hub cache's
    // blobs/), or in the quantized copy's.
    extra: { session: { model_external_initializers_file_folder_path: graph.externalDataFolder } },
  });
  const info: SessionInfo = {
    device,
    deviceId: device === 'cuda' ? deviceId : undefined,
    computeDtype,
    instrumented: options.instrument,
    graphNodes: graph.nodeCount,
    layers: graph.layers,
    loadMs: { graph: built - started, session: performance.now() - built },
  };
  const { numKvHeads, headDim } = checkpoint.spec;
  const numLayers = graph.layers;
  const kvType = computeDtype === 'float32' ? 'float32' : 'float16';
  const int64 = (data: BigInt64Array, dims: number[]): ort.Tensor => new ort.Tensor('int64', data, dims);
  const plainOutputs = [...(graph.logits ? [OUTPUT.logits, OUTPUT.logitsLogSumExp] : []), ...Array.from({ length: numLayers }, (_, l) => [presentKey(l), presentValue(l)]).flat()];
  const tapOutputs = [OUTPUT.tapInMax, OUTPUT.tapInChannel, OUTPUT.tapOutMax, OUTPUT.tapOutChannel, OUTPUT.tapSwitchValues];
  const run = async (f: StepFeeds, withTaps: boolean): Promise<StepFetches> => {
    const kv = (data: KvData, rows: number): ort.Tensor => new ort.Tensor(kvType, data, [rows, numKvHeads, f.slots, headDim]);
    const feeds: Record<string, ort.Tensor> = {
      [INPUT.inputIds]: int64(f.inputIds, [f.tokens]),
      [INPUT.positionIds]: int64(f.positionIds, [f.tokens]),
      [INPUT.decodePastLengths]: int64(f.decodePastLengths, [f.decodeRows]),
      [INPUT.prefillPastLengths]: int64(f.prefillPastLengths, [f.prefillRows]),
      [INPUT.prefillTokenIndex]: int64(f.prefillTokenIndex, [f.prefillRows, f.chunk]),
      [INPUT.prefillTokenMask]: new ort.Tensor('bool', f.prefillTokenMask, [f.prefillRows, f.chunk]),
      [INPUT.prefillRealIndex]: int64(f.prefillRealIndex, [f.prefillRealIndex.length]),
      [INPUT.logitsIndex]: int64(f.logitsIndex, [f.logitsIndex.length]),
    };
    for (let l = 0; l < numLayers; l++) {
      feeds[decodePastKey(l)] = kv(f.past.decode[l]!.key, f.decodeRows);
      feeds[decodePastValue(l)] = kv(f.past.decode[l]!.value, f.decodeRows);
      feeds[prefillPastKey(l)] = kv(f.past.prefill[l]!.key, f.prefillRows);
      feeds[prefillPastValue(l)] = kv(f.past.prefill[l]!.value, f.prefillRows);
    }
    const taps = info.instrumented && withTaps;
    if (info.instrumented) {
      const s = f.switches;
      feeds[INPUT.switchFactors] = new ort.Tensor('float32', s.factors, [f.tokens, s.rows.length]);
      feeds[INPUT.switchRows] = int64(s.rows, [s.rows.length]);
      feeds[INPUT.switchCols] = int64(s.cols, [s.cols.length]);
      feeds[INPUT.switchWidths] = int64(s.widths.subarray(0, numLayers), [numLayers]);
    }
    const out = await session.run(feeds, taps ? [...plainOutputs, ...tapOutputs] : plainOutputs);
    const present: LayerKv[] = [];
    for (let l = 0; l < numLayers; l++) {
      present.push({ key: out[presentKey(l)]!.data as KvData, value: out[presentValue(l)]!.data as KvData });
    }
    return {
      logits: graph.logits ? (out[OUTPUT.logits]!.data as Float32Array) : new Float32Array(0),
      logitsLogSumExp: graph.logits ? (out[OUTPUT.logitsLogSumExp]!.data as Float32Array) : new Float32Array(0),
      present,
      taps: taps
        ? {
            inMax: out[OUTPUT.tapInMax]!.data as Float32Array,
            inChannel: out[OUTPUT.tapInChannel]!.data as BigInt64Array,
            outMax: out[OUTPUT.tapOutMax]!.data as Float32Array,
            outChannel: out[OUTPUT.tapOutChannel]!.data as BigInt64Array,
            switchValues: out[OUTPUT.tapSwitchValues]!.data as Float32Array,
          }
        : undefined,
    };
  };
  return {
    info,
    run: device === 'webgpu' ? withDummyRowsForEmptyGroups(run, { numLayers, kvHeads: numKvHeads, headDim, elements: kvType }) : run,
    release: () => session.release(),
  };
}
