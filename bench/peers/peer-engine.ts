// The one interface every benchmarked engine implements (swserve, llama.cpp, Transformers.js), and the
// numbers a generation run reports. Prompts are token ids, so every engine sees the same tokens;
// decoding is greedy and runs to maxTokens (end-of-sequence tokens do not stop it, as swserve's
// ignore_eos), so every engine produces the same number of tokens.
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface PeerEngine {
  /** e.g. "swserve", "llama.cpp Q8_0", "transformers.js" */
  readonly name: string;
  load(): Promise<void>;
  /** Generates for all prompts at once (one request each); calls onToken as each token arrives. */
  generate(prompts: number[][], maxTokens: number, onToken?: (request: number, token: number) => void): Promise<number[][]>;
  close(): Promise<void>;
}

export interface GenerationTiming {
  tokens: number[][];
  /** From the call to the last token. */
  totalMs: number;
  /** Median over requests of the time to their first token. */
  medianFirstTokenMs: number;
  /** Tokens after each request's first / time from the first first-token to the last token. */
  decodeTokensPerSecond: number;
  /** All tokens / totalMs. */
  outputTokensPerSecond: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/**
 * Runs one generate call and times it from the engine's own token callbacks. Decode throughput starts at
 * the first token of any request, so engines that serve requests one after another pay for the later
 * prefills inside the window, as their users do.
 */
export async function timeGeneration(engine: PeerEngine, prompts: number[][], maxTokens: number): Promise<GenerationTiming> {
  const start = performance.now();
  const first: number[] = new Array<number>(prompts.length).fill(NaN);
  let last = start;
  const tokens = await engine.generate(prompts, maxTokens, (request) => {
    const now = performance.now();
    if (Number.isNaN(first[request]!)) first[request] = now;
    last = now;
  });
  const generated = tokens.reduce((a, t) => a + t.length, 0);
  const decodeStart = Math.min(...first);
  return {
    tokens,
    totalMs: last - start,
    medianFirstTokenMs: median(first.map((t) => t - start)),
    decodeTokensPerSecond: (generated - prompts.length) / ((last - decodeStart) / 1000),
    outputTokensPerSecond: generated / ((last - start) / 1000),
  };
}

/** Peers live outside swserve: --peers-dir, else SWSERVE_PEERS_DIR, else a user cache folder. */
export const DEFAULT_PEERS_DIR = path.join(os.homedir(), '.cache', 'swserve', 'bench', 'peers');

export function peersDir(flag?: string): string {
  return path.resolve(flag ?? process.env.SWSERVE_PEERS_DIR ?? DEFAULT_PEERS_DIR);
}

/** Imports a package installed by install-peers.sh into `<peers dir>/<folder>`. */
export async function importPeer<T>(dir: string, folder: string, pkg: string, entry: string): Promise<T> {
  const file = path.join(dir, folder, 'node_modules', pkg, entry);
  try {
    return (await import(pathToFileURL(file).href)) as T;
  } catch (err) {
    throw new Error(`cannot load ${pkg} from ${file} (${(err as Error).message.split('\n')[0]}); run bench/peers/install-peers.sh ${dir}`);
  }
}
