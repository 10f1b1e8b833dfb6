// Fetches a Hugging Face model repository into a plain local folder (real files, no links, since
// onnxruntime refuses external data behind links out of the model folder). The endpoint follows
// huggingface_hub's HF_ENDPOINT and HF_TOKEN, so mirrors and tests use the same code path.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

const REQUIRED_FILES = ['config.json', 'tokenizer.json'];
const OPTIONAL_FILES = ['tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];
const SHARD_INDEX = 'model.safetensors.index.json';
const SINGLE_WEIGHTS = 'model.safetensors';

export interface HubSource {
  repoId: string;
  revision: string;
  endpoint: string;
  token?: string;
}

export type DownloadProgress = (file: string, bytes: number, total: number | undefined) => void;

/** "org/name" as the hub spells repository ids. */
export function isHubRepoId(value: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(value) && !value.includes('..');
}

export function hubSourceFromEnv(repoId: string, revision = 'main', env: NodeJS.ProcessEnv = process.env): HubSource {
  return { repoId, revision, endpoint: (env.HF_ENDPOINT ?? DEFAULT_HUB_ENDPOINT).replace(/\/$/, ''), token: env.HF_TOKEN || undefined };
}

/** Where a repository is kept locally: $SWSERVE_CACHE or ~/.cache/swserve, then models/<org>--<name>/<revision>. */
export function localModelDir(source: HubSource, env: NodeJS.ProcessEnv = process.env): string {
  const cache = env.SWSERVE_CACHE ?? path.join(os.homedir(), '.cache', 'swserve');
  return path.join(cache, 'models', source.repoId.replace('/', '--'), source.revision);
}

/** Downloads what swserve needs (config, tokenizer, weights) unless the folder already has it. */
export async function downloadModel(source: HubSource, dir: string, onProgress?: DownloadProgress): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  for (const file of REQUIRED_FILES) await fetchFile(source, file, dir, true, onProgress);
  for (const file of OPTIONAL_FILES) await fetchFile(source, file, dir, false, onProgress);
  if (await fetchFile(source, SHARD_INDEX, dir, false, onProgress)) {
    const index = JSON.parse(fs.readFileSync(path.join(dir, SHARD_INDEX), 'utf8')) as { weight_map?: Record<string, string> };
    for (const shard of new Set(Object.values(index.weight_map ?? {}))) await fetchFile(source, shard, dir, true, onProgress);
  } else {
    await fetchFile(source, SINGLE_WEIGHTS, dir, true, onProgress);
  }
  return dir;
}

/** Returns false for an optional file the repository does not have. */
async function fetchFile(source: HubSource, file: string, dir: string, required: boolean, onProgress?: DownloadProgress): Promise<boolean> {
  if (!/^[\w.-]+$/.test(file)) throw new Error(`${source.repoId}: refusing weight file name ${JSON.stringify(file)}`);
  const target = path.join(dir, file);
  if (fs.existsSync(target)) return true;
  const url = `${source.endpoint}/${source.repoId}/resolve/${encodeURIComponent(source.revision)}/${file}`;
  const res = await fetch(url, { headers: source.token ? { authorization: `Bearer ${source.token}` } : {} });
  if (res.status === 404 && !required) return false;
  if (!res.ok || !res.body) {
    const hint = res.status === 401 || res.status === 403 ? ' (gated or private: set HF_TOKEN)' : '';
    throw new Error(`${url}: HTTP ${res.status}${hint}`);
  }
  const total = Number(res.headers.get('content-length')) || undefined;
  let bytes = 0;
  const partial = `${target}.part`;
  const counted = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>).on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    onProgress?.(file, bytes, total);
  });
  await pipeline(counted, fs.createWriteStream(partial));
  if (total !== undefined && bytes !== total) throw new Error(`${url}: received ${bytes} of ${total} bytes`);
  fs.renameSync(partial, target);
  return true;
}
