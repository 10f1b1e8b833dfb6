// The engines a benchmark can name (`swserve`, `llama.cpp:Q8_0`, `transformers.js`, ...), the files each
// needs made from the checkpoint (a GGUF, an Optimum export; made once and cached), and the factory that
// turns a name into a PeerEngine.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { exportOptimumOnnx } from '../../test/helpers/optimum-export.js';
import { ensureDerived, modelCacheDir } from '../model-shapes.js';
import { convertToGguf, GGUF_TYPES } from './convert-to-gguf.js';
import type { GgmlType } from './ggml-blocks.js';
import { LlamaCppPeer } from './llama-cpp-peer.js';
import type { PeerEngine } from './peer-engine.js';
import { SwservePeer } from './swserve-peer.js';
import { TransformersPeer } from './transformers-peer.js';

export const ENGINE_NAMES = ['swserve', 'swserve-plain', ...GGUF_TYPES.map((t) => `llama.cpp:${t}`), 'transformers.js'] as const;

export interface EngineSettings {
  threads: number;
  maxBatch: number;
  /** Longest prompt plus generated tokens, for context sizes. */
  maxPromptTokens: number;
  maxTokens: number;
  peersDir?: string;
}

/** Everything an engine process needs: the checkpoint and the files derived from it. */
export interface EngineJob {
  engine: string;
  modelDir: string;
  /** The GGUF for llama.cpp engines, the export folder for transformers.js. */
  artifact?: string;
  settings: EngineSettings;
}

function ggufType(engine: string): GgmlType | undefined {
  const type = engine.startsWith('llama.cpp:') ? engine.slice('llama.cpp:'.length) : undefined;
  if (type !== undefined && !GGUF_TYPES.includes(type as GgmlType)) throw new Error(`unknown GGUF type in ${engine}; use ${GGUF_TYPES.join(', ')}`);
  return type as GgmlType | undefined;
}

export function checkEngineName(engine: string): void {
  if (!(ENGINE_NAMES as readonly string[]).includes(engine)) throw new Error(`unknown engine ${engine}; known: ${ENGINE_NAMES.join(', ')}`);
}

/** Derived files live in the model cache, never inside the checkpoint folder (models/demo is in the repo). */
function derivedDir(modelDir: string): string {
  const real = fs.realpathSync(modelDir);
  const key = crypto.createHash('sha256').update(real).digest('hex').slice(0, 10);
  return path.join(modelCacheDir(), 'derived', `${path.basename(real)}-${key}`);
}

/** Makes (or finds) the file `engine` loads: a GGUF of the checkpoint, or its Optimum export. */
export function prepareArtifact(engine: string, modelDir: string): string | undefined {
  checkEngineName(engine);
  const type = ggufType(engine);
  if (type !== undefined) {
    fs.mkdirSync(derivedDir(modelDir), { recursive: true });
    return ensureDerived(path.join(derivedDir(modelDir), `model-${type}.gguf`), (target) => {
      process.stderr.write(`converting ${modelDir} to ${target}\n`);
      convertToGguf(modelDir, target, type);
    });
  }
  if (engine === 'transformers.js') {
    return ensureDerived(path.join(derivedDir(modelDir), 'optimum-onnx'), (target) => {
      process.stderr.write(`exporting ${modelDir} to ${target}\n`);
      exportOptimumOnnx(modelDir, target);
    });
  }
  return undefined;
}

export function createEngine(job: EngineJob): PeerEngine {
  const { engine, modelDir, artifact, settings: s } = job;
  checkEngineName(engine);
  const type = ggufType(engine);
  if (type !== undefined) {
    return new LlamaCppPeer({ ggufPath: artifact!, label: type, threads: s.threads, maxBatch: s.maxBatch, contextSize: s.maxPromptTokens + s.maxTokens, peersDir: s.peersDir });
  }
  if (engine === 'transformers.js') return new TransformersPeer({ exportDir: artifact!, threads: s.threads, peersDir: s.peersDir });
  return new SwservePeer({ modelDir, instrument: engine === 'swserve', threads: s.threads, maxBatch: s.maxBatch, maxPromptTokens: s.maxPromptTokens });
}
