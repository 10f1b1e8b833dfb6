// --model takes a local folder or a Hugging Face repository id ("org/name"), fetched once into the
// local cache and served from there.
import fs from 'node:fs';
import { downloadModel, hubSourceFromEnv, isHubRepoId, localModelDir } from '../model/hub-download.js';

export async function resolveModelDir(model: string, log: (message: string) => void): Promise<string> {
  if (fs.existsSync(model) || !isHubRepoId(model)) return model;
  const source = hubSourceFromEnv(model);
  const dir = localModelDir(source);
  log(`fetching ${model} from ${source.endpoint} into ${dir}`);
  let lastReport = 0;
  await downloadModel(source, dir, (file, bytes, total) => {
    // One line every 5% (or at the end) keeps logs readable for multi-GB shards.
    const share = total ? bytes / total : 0;
    if (share === 1 || share - lastReport >= 0.05) {
      lastReport = share === 1 ? 0 : share;
      log(`  ${file}: ${(bytes / 1e6).toFixed(1)} MB${total ? ` of ${(total / 1e6).toFixed(1)} MB` : ''}`);
    }
  });
  return dir;
}
