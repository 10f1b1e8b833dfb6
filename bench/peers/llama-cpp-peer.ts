// llama.cpp through node-llama-cpp 3.21.1 (installed by install-peers.sh, never a swserve dependency),
// driven as its documentation drives parallel generation: one context with one sequence per concurrent
// request, each sequence's evaluate() running at once so node-llama-cpp batches them into one decode.
// Greedy (temperature 0); end-of-generation tokens are yielded and do not stop a request.
import { importPeer, peersDir, type PeerEngine } from './peer-engine.js';

/** The part of node-llama-cpp's API this driver uses. */
type WithProbabilities = [number, { generateNext: { probabilities: true } }];
interface LlamaSequence {
  evaluate(tokens: number[], options: { temperature: number; yieldEogToken: boolean }): AsyncGenerator<number, void, void>;
  controlledEvaluate(input: WithProbabilities[]): Promise<({ next: { probabilities?: Map<number, number> } } | undefined)[]>;
  clearHistory(): Promise<void>;
}
interface LlamaContext {
  getSequence(): LlamaSequence;
  dispose(): Promise<void>;
}
export interface LlamaContextSettings {
  sequences: number;
  contextSize: number;
  threads: number;
  /** llama.cpp's defaults (F16 KV cache, flash attention "auto") unless set; F32 and off give float32 attention. */
  kvCacheType?: 'F32' | 'F16';
  flashAttention?: boolean;
}
export interface LlamaModel {
  createContext(options: Record<string, unknown>): Promise<LlamaContext>;
  /** Text to token ids with the GGUF's tokenizer (no BOS). */
  tokenize(text: string): number[];
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(options: { modelPath: string }): Promise<LlamaModel>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(options: { gpu: false; build: 'never'; logLevel: string; maxThreads: number }): Promise<Llama>;
}

export interface LlamaCppPeerOptions {
  ggufPath: string;
  /** Label suffix, e.g. the GGUF's tensor type. */
  label: string;
  threads: number;
  maxBatch: number;
  contextSize: number;
  peersDir?: string;
  kvCacheType?: 'F32' | 'F16';
  flashAttention?: boolean;
}

const CONTEXT_ALIGNMENT = 256;

/** Loads node-llama-cpp's CPU build from the peers folder. */
export async function loadLlama(dir: string | undefined, threads: number): Promise<Llama> {
  const lib = await importPeer<NodeLlamaCpp>(peersDir(dir), 'llama-cpp', 'node-llama-cpp', 'dist/index.js');
  return lib.getLlama({ gpu: false, build: 'never', logLevel: 'warn', maxThreads: threads });
}

export function contextOptions(settings: LlamaContextSettings): Record<string, unknown> {
  return {
    sequences: settings.sequences,
    // llama.cpp pads a context to a multiple of 256 anyway (node-llama-cpp's docs); asking for one keeps it quiet.
    contextSize: Math.ceil(settings.contextSize / CONTEXT_ALIGNMENT) * CONTEXT_ALIGNMENT,
    threads: settings.threads,
    ...(settings.kvCacheType ? { experimentalKvCacheKeyType: settings.kvCacheType, experimentalKvCacheValueType: settings.kvCacheType } : {}),
    ...(settings.flashAttention !== undefined ? { flashAttention: settings.flashAttention } : {}),
  };
}

export class LlamaCppPeer implements PeerEngine {
  readonly name: string;
  private llama?: Llama;
  private model?: LlamaModel;
  private context?: LlamaContext;
  private sequences: LlamaSequence[] = [];

  constructor(private readonly options: LlamaCppPeerOptions) {
    this.name = `llama.cpp ${options.label}`;
  }

  async load(): Promise<void> {
    const o = this.options;
    this.llama = await loadLlama(o.peersDir, o.threads);
    this.model = await this.llama.loadModel({ modelPath: o.ggufPath });
    this.context = await this.model.createContext(contextOptions({ sequences: o.maxBatch, contextSize: o.contextSize, threads: o.threads, kvCacheType: o.kvCacheType, flashAttention: o.flashAttention }));
    this.sequences = Array.from({ length: o.maxBatch }, () => this.context!.getSequence());
  }

  async generate(prompts: number[][], maxTokens: number, onToken?: (request: number, token: number) => void): Promise<number[][]> {
    if (prompts.length > this.sequences.length) throw new Error(`${prompts.length} prompts, but the context has ${this.sequences.length} sequences`);
    return Promise.all(
      prompts.map(async (prompt, i) => {
        const sequence = this.sequences[i]!;
        await sequence.clearHistory();
        const out: number[] = [];
        if (maxTokens === 0) return out;
        for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
          out.push(token);
          onToken?.(i, token);
          if (out.length >= maxTokens) break;
        }
        return out;
      }),
    );
  }

  async close(): Promise<void> {
    await this.context?.dispose();
    await this.model?.dispose();
    await this.llama?.dispose();
  }
}

/**
 * llama.cpp's next-token log-probabilities after every token of `prompt` (one batch), then after each token
 * of `continuation` fed one at a time through the KV cache: the same positions swserve's harness reports.
 */
export async function llamaCppLogProbs(ggufPath: string, vocabSize: number, prompt: number[], continuation: number[], settings: Omit<LlamaContextSettings, 'sequences'> & { peersDir?: string }): Promise<Float64Array[]> {
  const llama = await loadLlama(settings.peersDir, settings.threads);
  const model = await llama.loadModel({ modelPath: ggufPath });
  const context = await model.createContext(contextOptions({ ...settings, sequences: 1 }));
  const sequence = context.getSequence();
  const withProbs = (tokens: number[]): WithProbabilities[] => tokens.map((t) => [t, { generateNext: { probabilities: true } }]);
  const toLogProbs = (probs: Map<number, number> | undefined): Float64Array => {
    if (!probs) throw new Error('llama.cpp returned no probabilities');
    return Float64Array.from({ length: vocabSize }, (_, t) => Math.log(probs.get(t) ?? 0));
  };
  try {
    const out = (await sequence.controlledEvaluate(withProbs(prompt))).map((r) => toLogProbs(r?.next.probabilities));
    for (const token of continuation) out.push(toLogProbs((await sequence.controlledEvaluate(withProbs([token])))[0]?.next.probabilities));
    return out;
  } finally {
    await context.dispose();
    await model.dispose();
    await llama.dispose();
  }
}
