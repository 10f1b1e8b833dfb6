// --model takes a local folder (a model folder, a hub-cache snapshot, or a hub-cache repository
// folder models--org--name) or a hub repository id "org/name[@revision]", fetched into the Hugging Face
// cache once and served from there. Anything else gets one message saying what was looked for where.
import fs from 'node:fs';
import path from 'node:path';
import { HubCacheRepo } from '../model/hub-cache.js';
import { fetchModel, HubError, hubSourceFromEnv, parseHubModelId, type DownloadProgress } from '../model/hub-download.js';
import { progressBar } from './progress-bar.js';

export async function resolveModelDir(model: string, log: (message: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  if (fs.existsSync(model)) {
    if (!fs.statSync(model).isDirectory()) throw new Error(`--model ${model}: is a file; expected a model folder or a hub repository id ORG/NAME`);
    return HubCacheRepo.isRepoFolder(model) ? snapshotOfRepoFolder(model) : model;
  }
  const hubId = parseHubModelId(model);
  const notHere = `--model ${model}: there is no model folder ${path.resolve(model)}`;
  if (path.isAbsolute(model) || model.startsWith('.')) throw new Error(notHere);
  if (!hubId) throw new Error(`${notHere}, and it is not a hub repository id (ORG/NAME or ORG/NAME@REVISION)`);
  const source = hubSourceFromEnv(hubId.repoId, hubId.revision, env);
  try {
    if (!source.offline) log(`${model} is not a folder here: fetching it from ${source.endpoint} into ${source.cacheDir}`);
    return await fetchModel(source, { onProgress: downloadProgress(), onNotice: log });
  } catch (err) {
    if (err instanceof HubError) throw new Error(`${notHere}, and ${err.kind === 'offline' ? '' : 'on the hub: '}${err.message}`);
    throw err;
  }
}

/** A models--org--name folder: the snapshot refs/main names, else the only snapshot there is. */
function snapshotOfRepoFolder(dir: string): string {
  const repo = new HubCacheRepo(dir);
  const main = repo.cachedSnapshot('main');
  if (main) return main;
  const snapshots = fs.readdirSync(path.join(dir, 'snapshots'));
  if (snapshots.length === 1) return repo.snapshotDir(snapshots[0]!);
  throw new Error(`--model ${dir}: a hub cache repository without refs/main and with ${snapshots.length} snapshots; name one, ${path.join(dir, 'snapshots', '<commit>')}`);
}

/** A bar per file redrawn in place on a terminal; on a log, a line every tenth of each file. */
export function downloadProgress(stream: NodeJS.WriteStream = process.stderr): DownloadProgress {
  let current: string | undefined;
  let bar: ((done: number, total: number) => void) | undefined;
  return (file, bytes, total) => {
    // A size-less answer (a mirror without Content-Length) gets no bar: there is no share to draw.
    if (total === undefined) return;
    if (file !== current) {
      current = file;
      bar = progressBar(file, stream, megabytes);
    }
    bar!(bytes, total);
  };
}

const megabytes = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
