// `swserve download`: fetch a Hugging Face model repository into the hub cache (the layout
// huggingface_hub and transformers read), optionally placing plain files in a folder as well.
import { fetchModel, hubSourceFromEnv, parseHubModelId, placeSnapshot } from '../model/hub-download.js';
import { parseCommandLine, UsageError, type CommandSpec, type FlagTable } from './command-line.js';
import { downloadProgress } from './model-location.js';

export const DOWNLOAD_COMMAND = {
  name: 'download',
  summary: 'fetch a Hugging Face model repository (config, tokenizer, safetensors) into the Hugging Face cache',
  positionals: 'ORG/NAME[@REVISION]',
  flags: {
    revision: { type: 'string', value: 'REV', description: 'Branch, tag or commit to fetch (ORG/NAME@REV says the same).', defaultNote: 'main' },
    out: { type: 'string', value: 'DIR', description: 'Also place the files in this folder as plain files (hard links where possible), like huggingface-cli --local-dir.', defaultNote: 'none, the cache only' },
  },
  notes: [
    'Files go to the Hugging Face cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (models--ORG--NAME/).',
    'Environment, as for huggingface_hub: HF_TOKEN (gated or private repositories), HF_ENDPOINT (a mirror), HF_HUB_OFFLINE=1 (the cache only).',
    'The snapshot folder is printed on stdout; an interrupted download resumes where it stopped.',
  ],
} as const satisfies CommandSpec<FlagTable>;

export async function runDownload(argv: string[]): Promise<void> {
  const parsed = parseCommandLine(DOWNLOAD_COMMAND, argv);
  if (!parsed) return;
  const { values, positionals } = parsed;
  const hubId = positionals.length === 1 ? parseHubModelId(positionals[0]!) : undefined;
  if (!hubId) throw new UsageError('expected one hub repository id, ORG/NAME or ORG/NAME@REVISION; see `swserve download --help`');
  if (hubId.revision && values.revision && hubId.revision !== values.revision) {
    throw new UsageError(`two revisions given: @${hubId.revision} and --revision ${values.revision}`);
  }
  const source = hubSourceFromEnv(hubId.repoId, hubId.revision ?? values.revision ?? 'main');
  const snapshot = await fetchModel(source, { onProgress: downloadProgress(), onNotice: (m) => process.stderr.write(`${m}\n`) });
  if (values.out) placeSnapshot(snapshot, values.out);
  process.stdout.write(`${values.out ?? snapshot}\n`);
}
