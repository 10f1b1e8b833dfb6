// swserve as a benchmark engine: EngineCore driven directly (as bench/engine-bench.ts does, no HTTP or
// worker), every prompt one sequence of the continuously batched engine, greedy with ignore_eos.
import { EngineCore } from '../../src/engine/engine-core.js';
import { readModelSuperWeights } from '../../src/superweights/model-super-weights.js';
import { analysisRequest } from '../../src/superweights/engine-run.js';
import type { PeerEngine } from './peer-engine.js';
import type { WeightsPrecision } from '../../src/model/quantize/weight-format.js';

export interface SwservePeerOptions {
  modelDir: string;
  /** The product graph (switch and taps) unless false. */
  instrument: boolean;
  threads: number;
  maxBatch: number;
  maxPromptTokens: number;
  /** --weights; float32 unless set. */
  precision?: WeightsPrecision;
}

export class SwservePeer implements PeerEngine {
  readonly name: string;
  private engine?: EngineCore;
  private onToken?: (id: string, token: number) => void;
  private readonly errors: string[] = [];

  constructor(private readonly options: SwservePeerOptions) {
    this.name = options.precision ? `swserve ${options.precision}` : options.instrument ? 'swserve' : 'swserve (plain graph)';
  }

  async load(): Promise<void> {
    const o = this.options;
    this.engine = await EngineCore.load(
      {
        modelDir: o.modelDir,
        device: { kind: 'cpu' },
        instrument: o.instrument,
        limits: { maxNumSeqs: o.maxBatch, maxNumBatchedTokens: o.maxBatch * o.maxPromptTokens },
        knownSuperWeights: readModelSuperWeights(o.modelDir),
        intraOpThreads: o.threads,
        weights: o.precision ? { precision: o.precision } : undefined,
      },
      ({ events }) => {
        for (const e of events) {
          if (e.type === 'token') this.onToken?.(e.id, e.tokenId);
          if (e.type === 'error') this.errors.push(`${e.id}: ${e.message}`);
        }
      },
    );
  }

  async generate(prompts: number[][], maxTokens: number, onToken?: (request: number, token: number) => void): Promise<number[][]> {
    const engine = this.engine!;
    const out = prompts.map((): number[] => []);
    this.onToken = (id, token) => {
      const request = Number(id);
      out[request]!.push(token);
      onToken?.(request, token);
    };
    prompts.forEach((tokenIds, i) => engine.submit(analysisRequest({ id: String(i), prompt: { tokenIds }, maxTokens })));
    while (await engine.step());
    this.onToken = undefined;
    if (this.errors.length > 0) throw new Error(`swserve refused requests: ${this.errors.splice(0).join('; ')}`);
    return out;
  }

  async close(): Promise<void> {
    await this.engine?.close();
  }
}
