// `swserve download`: fetch a Hugging Face model repository into a local folder swserve can serve.
import { downloadModel, hubSourceFromEnv, isHubRepoId, localModelDir } from '../model/hub-download.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagTable } from './command-line.js';

export const DOWNLOAD_COMMAND = {
  name: 'download',
  summary: 'fetch a Hugging Face model repository (config, tokenizer, safetensors) into the local cache',
  positionals: 'ORG/NAME',
  flags: {
    revision: { type: 'string', value: 'REV', default: 'main', description: 'Branch, tag or commit to fetch.' },
    out: { type: 'string', value: 'DIR', description: 'Folder to write the files to.', defaultNote: '$SWSERVE_CACHE or ~/.cache/swserve, then models/ORG--NAME/REV' },
  },
  notes: ['Environment: HF_TOKEN (gated or private repositories) and HF_ENDPOINT (a mirror), as for huggingface_hub.'],
} as const satisfies CommandSpec<FlagTable>;

export async function runDownload(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(DOWNLOAD_COMMAND, argv);
  if (!parsed) return;
  const { values, positionals } = parsed;
  const repoId = positionals[0];
  if (!repoId || !isHubRepoId(repoId)) throw new UsageError('expected one hub repository id, ORG/NAME; see `swserve download --help`');
  const source = hubSourceFromEnv(repoId, values.revision);
  const dir = await downloadModel(source, values.out ?? localModelDir(source), (file, bytes, total) => {
    if (bytes === total) process.stderr.write(`${file}: ${(bytes / 1e6).toFixed(1)} MB\n`);
  });
  process.stdout.write(`${dir}\n`);
}
