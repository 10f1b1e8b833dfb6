// Transformers.js (@huggingface/transformers on onnxruntime-node, installed by install-peers.sh) on an
// Optimum-layout export of the same checkpoint (test/helpers/optimum-export.ts), used as its users use
// it: one model.generate() call per request, greedy, all requests issued at once.
import path from 'node:path';
import { importPeer, peersDir, type PeerEngine } from './peer-engine.js';

/** The part of @huggingface/transformers' API this driver uses. */
interface TjsTensor {
  dims: number[];
}
interface TjsModel {
  generate(options: Record<string, unknown>): Promise<unknown>;
  dispose(): Promise<unknown>;
}
interface TransformersJs {
  env: { allowRemoteModels: boolean; localModelPath: string; version: string };
  Tensor: new (type: string, data: BigInt64Array, dims: number[]) => TjsTensor;
  AutoModelForCausalLM: { from_pretrained(id: string, options: Record<string, unknown>): Promise<TjsModel> };
}

export interface TransformersPeerOptions {
  /** A folder written by exportOptimumOnnx (config.json, tokenizer, onnx/model.onnx + data). */
  exportDir: string;
  threads: number;
  peersDir?: string;
}

/** Streamer that reports each generated token (Transformers.js first puts the prompt, then one token per step). */
function tokenStreamer(onToken: (token: number) => void): { put(ids: bigint[][]): void; end(): void } {
  let promptSeen = false;
  return {
    put(ids) {
      if (!promptSeen) {
        promptSeen = true;
        return;
      }
      for (const [id] of ids) onToken(Number(id));
    },
    end() {},
  };
}

export class TransformersPeer implements PeerEngine {
  readonly name = 'transformers.js';
  private lib?: TransformersJs;
  private model?: TjsModel;

  constructor(private readonly options: TransformersPeerOptions) {}

  async load(): Promise<void> {
    const lib = await importPeer<TransformersJs>(peersDir(this.options.peersDir), 'transformers', '@huggingface/transformers', 'dist/transformers.node.mjs');
    // Offline: the model id is the export's folder name under localModelPath.
    lib.env.allowRemoteModels = false;
    lib.env.localModelPath = path.dirname(path.resolve(this.options.exportDir)) + path.sep;
    this.lib = lib;
    this.model = await lib.AutoModelForCausalLM.from_pretrained(path.basename(this.options.exportDir), {
      dtype: 'fp32',
      device: 'cpu',
      local_files_only: true,
      session_options: { intraOpNumThreads: this.options.threads },
    });
  }

  async generate(prompts: number[][], maxTokens: number, onToken?: (request: number, token: number) => void): Promise<number[][]> {
    const { Tensor } = this.lib!;
    return Promise.all(
      prompts.map(async (prompt, i) => {
        const out: number[] = [];
        if (maxTokens === 0) return out;
        const ids = BigInt64Array.from(prompt, BigInt);
        await this.model!.generate({
          input_ids: new Tensor('int64', ids, [1, prompt.length]),
          attention_mask: new Tensor('int64', new BigInt64Array(prompt.length).fill(1n), [1, prompt.length]),
          max_new_tokens: maxTokens,
          do_sample: false,
          // No end-of-sequence stop, so every engine generates maxTokens.
          eos_token_id: null,
          streamer: tokenStreamer((token) => {
            out.push(token);
            onToken?.(i, token);
          }),
        });
        return out;
      }),
    );
  }

  async close(): Promise<void> {
    await this.model?.dispose();
  }
}
