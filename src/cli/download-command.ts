// `swserve download`: fetch a Hugging Face model repository into a local folder swserve can serve.
import { parseArgs } from 'node:util';
import { downloadModel, hubSourceFromEnv, isHubRepoId, localModelDir } from '../model/hub-download.js';

export const DOWNLOAD_USAGE = 'swserve download ORG/NAME [--revision REV] [--out DIR]   (HF_TOKEN, HF_ENDPOINT as for huggingface_hub)';

export async function runDownload(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { revision: { type: 'string', default: 'main' }, out: { type: 'string' } },
  });
  const repoId = positionals[0];
  if (!repoId || !isHubRepoId(repoId)) throw new Error(`usage: ${DOWNLOAD_USAGE}`);
  const source = hubSourceFromEnv(repoId, values.revision);
  const dir = await downloadModel(source, values.out ?? localModelDir(source), (file, bytes, total) => {
    if (bytes === total) process.stderr.write(`${file}: ${(bytes / 1e6).toFixed(1)} MB\n`);
  });
  process.stdout.write(`${dir}\n`);
}
