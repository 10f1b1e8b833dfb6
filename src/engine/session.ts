// The only file that touches onnxruntime: builds the decoder graph for the chosen device, creates the
// session (falling back to CPU loudly when CUDA cannot start), and runs one batch step.
import * as ort from 'onnxruntime-node';
import type { Checkpoint } from '../model/checkpoint.js';
import { buildServingGraph } from '../model/serving-graph.js';
import type { ComputeDtype } from '../model/graph-context.js';
import type { DeviceRequest } from './device.js';
import { INPUT, OUTPUT, pastKey, pastValue, presentKey, presentValue, switchCols, switchFactors, switchRows } from '../model/graph-io.js';

/** KV elements as the graph holds them: float32, or float16 bits on CUDA. */
export type KvData = Float32Array | Uint16Array;

export interface LayerKv {
  key: KvData;
  value: KvData;
}

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
  device: 'cpu' | 'cuda';
  deviceId?: number;
  computeDtype: ComputeDtype;
  instrumented: boolean;
  /** Why a requested CUDA device is not in use. */
  fallbackReason?: string;
  graphNodes: number;
}

export interface ModelSession {
  info: SessionInfo;
  run(feeds: StepFeeds): Promise<StepFetches>;
  release(): Promise<void>;
}

export interface ModelSessionOptions {
  device: DeviceRequest;
  instrument: boolean;
  /** float32 on CPU and float16 on CUDA unless set (tests run the float16 graph on CPU). */
  computeDtype?: ComputeDtype;
  /** Threads for one operator; onnxruntime's default uses every core. */
  intraOpThreads?: number;
  onWarning?: (message: string) => void;
}

export async function createModelSession(checkpoint: Checkpoint, options: ModelSessionOptions): Promise<ModelSession> {
  if (options.device.kind === 'cuda') {
    try {
      return await open(checkpoint, options, 'cuda', options.device.deviceId);
    } catch (err) {
      const reason = `CUDA device ${options.device.deviceId} could not start: ${(err as Error).message.split('\n')[0]}`;
      options.onWarning?.(`${reason}; falling back to CPU`);
      const session = await open(checkpoint, options, 'cpu');
      session.info.fallbackReason = reason;
      return session;
    }
  }
  return open(checkpoint, options, 'cpu');
}

async function open(checkpoint: Checkpoint, options: ModelSessionOptions, device: 'cpu' | 'cuda', deviceId = 0): Promise<ModelSession> {
  const graph = buildServingGraph(checkpoint, {
    computeDtype: options.computeDtype ?? (device === 'cuda' ? 'float16' : 'float32'),
    instrument: options.instrument,
  });
  const { computeDtype } = graph;
  const session = await ort.InferenceSession.create(graph.bytes, {
    executionProviders: device === 'cuda' ? [{ name: 'cuda', deviceId }] : ['cpu'],
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
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
  const numLayers = checkpoint.spec.numLayers;
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
      for (let l = 0; l < numLayers; l++) {
        feeds[pastKey(l)] = new ort.Tensor(kvType, f.past[l]!.key, kvShape(f.batch, f.pastSlots));
        feeds[pastValue(l)] = new ort.Tensor(kvType, f.past[l]!.value, kvShape(f.batch, f.pastSlots));
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
      for (let l = 0; l < numLayers; l++) {
        present.push({ key: out[presentKey(l)]!.data as KvData, value: out[presentValue(l)]!.data as KvData });
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
    release: () => session.release(),
  };
}
