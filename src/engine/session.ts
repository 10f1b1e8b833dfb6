// The only file that touches onnxruntime: builds the decoder graph for the chosen device, creates the
// session (falling back to CPU loudly when CUDA or WebGPU cannot start), and runs one batch step. On
// WebGPU the present KV outputs stay on the device (preferredOutputLocation) and go back in as the next
// step's past without crossing to the host; only a batch change brings them over (kv-cache.ts).
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from '../model/checkpoint.js';
import { buildServingGraph } from '../model/serving-graph.js';
import { DECODER_OPSET } from '../model/decoder-graph.js';
import { GraphBuilder } from '../model/onnx-graph.js';
import type { ComputeDtype } from '../model/graph-context.js';
import type { DeviceRequest } from './device.js';
import { INPUT, OUTPUT, pastKey, pastValue, presentKey, presentValue, switchCols, switchFactors, switchRows } from '../model/graph-io.js';

/** KV elements as the graph holds them: float32, or float16 bits on CUDA. */
export type KvData = Float32Array | Uint16Array;

/** A KV tensor the device keeps (WebGPU); opaque outside this file. */
export interface DeviceKv {
  readonly onDevice: true;
}

export interface LayerKv {
  key: KvData | DeviceKv;
  value: KvData | DeviceKv;
}

/** Host copies of the KV layers (those on the device are copied over and let go). */
export interface KvTransfer {
  toHost(layers: LayerKv[]): Promise<{ key: KvData; value: KvData }[]>;
  /** Lets go of device tensors that are no longer read. */
  release(layers: LayerKv[]): void;
}

export const isDeviceKv = (data: KvData | DeviceKv): data is DeviceKv => 'onDevice' in data;

/** One batch step's inputs as plain typed arrays (shapes in graph-io.ts). */
export interface StepFeeds {
  batch: number;
  tokens: number;
  pastSlots: number;
  inputIds: BigInt64Array;
  positionIds: BigInt64Array;
  attentionBias: Float32Array;
  logitsIndex: BigInt64Array;
  tokenMask: Float32Array;
  restorePosition: BigInt64Array;
  past: LayerKv[];
  /** Per layer: switched coordinates and [B, K] factors. */
  switches: { rows: BigInt64Array; cols: BigInt64Array; factors: Float32Array }[];
}

export interface StepTaps {
  inMax: Float32Array;
  inArg: BigInt64Array;
  outMax: Float32Array;
  outArg: BigInt64Array;
  switchValues: Float32Array;
  switchPeaks: BigInt64Array;
}

export interface StepFetches {
  logits: Float32Array;
  /** log(sum(exp(logits))) per logits row. */
  logitsLogSumExp: Float32Array;
  present: LayerKv[];
  /** Absent on a graph built without instrumentation. */
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
}

export interface ModelSession {
  info: SessionInfo;
  run(feeds: StepFeeds): Promise<StepFetches>;
  /** How the KV cache brings device-resident layers to the host (WebGPU); absent when they never leave it. */
  kvTransfer?: KvTransfer;
  release(): Promise<void>;
}

export interface ModelSessionOptions {
  device: DeviceRequest;
  instrument: boolean;
  /** float32 on CPU, float16 on CUDA and on WebGPU devices with shader-f16, unless set (tests run the float16 graph on CPU). */
  computeDtype?: ComputeDtype;
  /** Threads for one operator; onnxruntime's default uses every core. */
  intraOpThreads?: number;
  onWarning?: (message: string) => void;
}

type Provider = 'cpu' | 'cuda' | 'webgpu';

export async function createModelSession(checkpoint: Checkpoint, options: ModelSessionOptions): Promise<ModelSession> {
  const { device } = options;
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
  const graph = buildServingGraph(checkpoint, {
    computeDtype: options.computeDtype ?? (device === 'cuda' ? 'float16' : 'float32'),
    instrument: options.instrument,
  });
  const { computeDtype } = graph;
  const numLayers = checkpoint.spec.numLayers;
  const presentNames = Array.from({ length: numLayers }, (_, l) => [presentKey(l), presentValue(l)]).flat();
  const session = await ort.InferenceSession.create(graph.bytes, {
    executionProviders: device === 'cuda' ? [{ name: 'cuda', deviceId }] : [device],
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    ...(device === 'webgpu' ? { preferredOutputLocation: Object.fromEntries(presentNames.map((n) => [n, 'gpu-buffer' as const])) } : {}),
    // The graph is held in memory; its external data lives in the checkpoint folder (or the hub cache's blobs/).
    extra: { session: { model_external_initializers_file_folder_path: checkpoint.externalDataDir } },
  });
  const info: SessionInfo = {
    device,
    deviceId: device === 'cuda' ? deviceId : undefined,
    computeDtype,
    instrumented: options.instrument,
    graphNodes: graph.nodeCount,
  };
  const kvShape = (batch: number, slots: number): number[] => [batch, checkpoint.spec.numKvHeads, slots, checkpoint.spec.headDim];
  const kvType = computeDtype === 'float32' ? 'float32' : 'float16';
  return {
    info,
    async run(f: StepFeeds): Promise<StepFetches> {
      const feeds: Record<string, ort.Tensor> = {
        [INPUT.inputIds]: new ort.Tensor('int64', f.inputIds, [f.batch, f.tokens]),
        [INPUT.positionIds]: new ort.Tensor('int64', f.positionIds, [f.batch, f.tokens]),
        [INPUT.attentionBias]: new ort.Tensor('float32', f.attentionBias, [f.batch, 1, f.tokens, f.pastSlots + f.tokens]),
        [INPUT.logitsIndex]: new ort.Tensor('int64', f.logitsIndex, [f.logitsIndex.length]),
      };
      const kvFeed = (data: KvData | DeviceKv): ort.Tensor => (isDeviceKv(data) ? (data as DeviceTensor).tensor : new ort.Tensor(kvType, data, kvShape(f.batch, f.pastSlots)));
      for (let l = 0; l < numLayers; l++) {
        feeds[pastKey(l)] = kvFeed(f.past[l]!.key);
        feeds[pastValue(l)] = kvFeed(f.past[l]!.value);
      }
      if (info.instrumented) {
        feeds[INPUT.tokenMask] = new ort.Tensor('float32', f.tokenMask, [f.batch, f.tokens]);
        feeds[INPUT.restorePosition] = new ort.Tensor('int64', f.restorePosition, [f.batch]);
        f.switches.forEach((s, l) => {
          feeds[switchRows(l)] = new ort.Tensor('int64', s.rows, [s.rows.length]);
          feeds[switchCols(l)] = new ort.Tensor('int64', s.cols, [s.cols.length]);
          feeds[switchFactors(l)] = new ort.Tensor('float32', s.factors, [f.batch, s.rows.length]);
        });
      }
      const out = await session.run(feeds);
      const present: LayerKv[] = [];
      const kvFetch = (t: ort.Tensor): KvData | DeviceKv => (t.location === 'gpu-buffer' ? deviceTensor(t) : (t.data as KvData));
      for (let l = 0; l < numLayers; l++) {
        present.push({ key: kvFetch(out[presentKey(l)]!), value: kvFetch(out[presentValue(l)]!) });
      }
      const taps = info.instrumented
        ? {
            inMax: out[OUTPUT.tapInMax]!.data as Float32Array,
            inArg: out[OUTPUT.tapInArg]!.data as BigInt64Array,
            outMax: out[OUTPUT.tapOutMax]!.data as Float32Array,
            outArg: out[OUTPUT.tapOutArg]!.data as BigInt64Array,
            switchValues: out[OUTPUT.tapSwitchValues]!.data as Float32Array,
            switchPeaks: out[OUTPUT.tapSwitchPeaks]!.data as BigInt64Array,
          }
        : undefined;
      return { logits: out[OUTPUT.logits]!.data as Float32Array, logitsLogSumExp: out[OUTPUT.logitsLogSumExp]!.data as Float32Array, present, taps };
    },
    kvTransfer: device === 'webgpu' ? await webgpuKvTransfer(kvType) : undefined,
    release: () => session.release(),
  };
}

interface DeviceTensor extends DeviceKv {
  tensor: ort.Tensor;
}

const deviceTensor = (tensor: ort.Tensor): DeviceTensor => ({ onDevice: true, tensor });

/**
 * Copies device tensors to the host through a one-node Identity session whose output stays on the CPU:
 * the Node binding's own download (Tensor.getData on a gpu-buffer tensor) ends the process in 1.30.
 */
async function webgpuKvTransfer(kvType: 'float32' | 'float16'): Promise<KvTransfer> {
  const g = new GraphBuilder();
  const x = g.input('x', kvType, ['b', 'h', 's', 'd']);
  g.output(g.op('Identity', [x]), 'y', kvType, ['b', 'h', 's', 'd']);
  const copier = await ort.InferenceSession.create(g.toModelBytes({ opset: DECODER_OPSET, producerName: 'swserve' }), { executionProviders: ['webgpu'] });
  const toHost = async (data: KvData | DeviceKv): Promise<KvData> => {
    if (!isDeviceKv(data)) return data;
    const { tensor } = data as DeviceTensor;
    const out = await copier.run({ x: tensor });
    tensor.dispose();
    return out.y!.data as KvData;
  };
  return {
    async toHost(layers) {
      const host: { key: KvData; value: KvData }[] = [];
      for (const layer of layers) host.push({ key: await toHost(layer.key), value: await toHost(layer.value) });
      return host;
    },
    release(layers) {
      for (const layer of layers) for (const data of [layer.key, layer.value]) if (isDeviceKv(data)) (data as DeviceTensor).tensor.dispose();
    },
  };
}
