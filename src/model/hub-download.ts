// Fetches what swserve serves from a Hugging Face model repository into the hub cache (hub-cache.ts),
// speaking the hub's protocol as huggingface_hub does: a HEAD on /{repo}/resolve/{revision}/{file}
// names the commit (X-Repo-Commit), the content hash (X-Linked-Etag for LFS files, else ETag) and
// size (X-Linked-Size, else Content-Length), and redirects large files to a CDN; the GET goes into
// blobs/<etag>.incomplete, resumed with Range after a cut, checked against size and hash, then linked
// into the snapshot. HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE mean what they mean to huggingface_hub.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { fileDigestMatches } from './hub-digest.js';
import { HubCacheRepo, hfHome, hubCacheDir } from './hub-cache.js';
import { findOnnxModel, ONNX_MODEL_FILES, onnxExternalFiles } from './onnx-export.js';

export const DEFAULT_HUB_ENDPOINT = 'https://huggingface.co';

const REQUIRED_FILES = ['config.json', 'tokenizer.json'];
const OPTIONAL_FILES = ['tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja', 'super_weights.json'];
const SHARD_INDEX = 'model.safetensors.index.json';
const SINGLE_WEIGHTS = 'model.safetensors';

// huggingface_hub's http_get resumes a cut transfer up to 5 times before giving up.
const TRANSFER_ATTEMPTS = 5;
// Relative redirects (a renamed repository) are followed on the HEAD; huggingface_hub sets no bound, we do.
const MAX_RELATIVE_REDIRECTS = 5;

export interface HubSource {
  repoId: string;
  revision: string;
  endpoint: string;
  token?: string;
  /** HF_HUB_OFFLINE: the cache only, no request. */
  offline: boolean;
  cacheDir: string;
}

export type HubErrorKind = 'not_found' | 'unauthorized' | 'offline' | 'unreachable' | 'corrupt' | 'protocol';

export class HubError extends Error {
  override name = 'HubError';
  constructor(
    readonly kind: HubErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export type DownloadProgress = (file: string, bytes: number, total: number | undefined) => void;

/** "org/name" as the hub spells repository ids. */
export function isHubRepoId(value: string): boolean {
  return /^[\w.-]+\/[\w.-]+$/.test(value) && !value.split('/').some((part) => part === '.' || part === '..');
}

/** "org/name" or "org/name@revision" (a branch, tag or commit). */
export function parseHubModelId(value: string): { repoId: string; revision?: string } | undefined {
  const at = value.indexOf('@');
  const repoId = at < 0 ? value : value.slice(0, at);
  const revision = at < 0 ? undefined : value.slice(at + 1);
  if (!isHubRepoId(repoId)) return undefined;
  if (revision !== undefined && (!/^[\w.\/-]+$/.test(revision) || revision.split('/').includes('..'))) return undefined;
  return { repoId, revision };
}

// huggingface_hub's ENV_VARS_TRUE_VALUES.
const isTrue = (value: string | undefined): boolean => ['1', 'ON', 'YES', 'TRUE'].includes((value ?? '').toUpperCase());

export function hubSourceFromEnv(repoId: string, revision = 'main', env: NodeJS.ProcessEnv = process.env): HubSource {
  return {
    repoId,
    revision,
    endpoint: (env.HF_ENDPOINT || DEFAULT_HUB_ENDPOINT).replace(/\/$/, ''),
    token: env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || storedToken(env),
    offline: isTrue(env.HF_HUB_OFFLINE) || isTrue(env.TRANSFORMERS_OFFLINE),
    cacheDir: hubCacheDir(env),
  };
}

/** The token `huggingface-cli login` saved ($HF_TOKEN_PATH, else $HF_HOME/token). */
function storedToken(env: NodeJS.ProcessEnv): string | undefined {
  const file = env.HF_TOKEN_PATH || path.join(hfHome(env), 'token');
  try {
    return fs.readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** What the hub says about one file before it is fetched. */
interface FileMetadata {
  commit: string;
  etag: string;
  size?: number;
  /** Where the bytes are: the resolve URL, or the CDN it redirects to. */
  downloadUrl: string;
}

export interface FetchOptions {
  onProgress?: DownloadProgress;
  /** Said when the hub cannot be reached and the cached snapshot is served instead. */
  onNotice?: (message: string) => void;
}

/** Fetches config, tokenizer and weights into the cache (what is there already is not fetched again); returns the snapshot folder. */
export async function fetchModel(source: HubSource, options: FetchOptions = {}): Promise<string> {
  const repo = HubCacheRepo.of(source.cacheDir, source.repoId);
  const label = `${source.repoId}@${source.revision}`;
  if (source.offline) {
    const cached = completeSnapshot(repo, source.revision);
    if (!cached) throw new HubError('offline', `HF_HUB_OFFLINE is set and the cache ${source.cacheDir} holds no complete snapshot of ${label}`);
    return cached;
  }
  let first: FileMetadata;
  try {
    first = await fileMetadata(source, source.revision, REQUIRED_FILES[0]!);
  } catch (err) {
    const cached = err instanceof HubError && err.kind === 'unreachable' ? completeSnapshot(repo, source.revision) : undefined;
    if (!cached) throw err;
    options.onNotice?.(`${(err as HubError).message}; serving the cached snapshot ${cached}`);
    return cached;
  }
  const { commit } = first;
  const fetcher = new SnapshotFetcher(source, repo, commit, options.onProgress);
  await fetcher.file(REQUIRED_FILES[0]!, true, first);
  repo.writeRef(source.revision, commit);
  for (const file of REQUIRED_FILES.slice(1)) await fetcher.file(file, true);
  for (const file of OPTIONAL_FILES) await fetcher.file(file, false);
  if (await fetcher.file(SHARD_INDEX, false)) {
    for (const shard of shardFiles(path.join(repo.snapshotDir(commit), SHARD_INDEX))) await fetcher.file(shard, true);
  } else if (!(await fetcher.file(SINGLE_WEIGHTS, false)) && !(await fetchOnnxExport(fetcher, repo.snapshotDir(commit)))) {
    throw new HubError('not_found', `${source.endpoint}/${source.repoId} has neither ${SINGLE_WEIGHTS}, ${SHARD_INDEX} nor an ONNX export (${ONNX_MODEL_FILES.join(' or ')})`);
  }
  return repo.snapshotDir(commit);
}

/** An ONNX repository: the decoder (onnx/model.onnx as hub ONNX repositories keep it, or model.onnx) and the external data files it names. */
async function fetchOnnxExport(fetcher: SnapshotFetcher, snapshot: string): Promise<boolean> {
  for (const file of ONNX_MODEL_FILES) {
    if (!(await fetcher.file(file, false))) continue;
    for (const data of onnxExternalFiles(path.join(snapshot, file))) await fetcher.file(path.posix.join(path.posix.dirname(file), data), true);
    return true;
  }
  return false;
}

/** The cached snapshot of `revision` if it has config, tokenizer and every weight file. */
function completeSnapshot(repo: HubCacheRepo, revision: string): string | undefined {
  const dir = repo.cachedSnapshot(revision);
  if (!dir || !REQUIRED_FILES.every((f) => fs.existsSync(path.join(dir, f)))) return undefined;
  const index = path.join(dir, SHARD_INDEX);
  if (fs.existsSync(index)) return shardFiles(index).every((f) => fs.existsSync(path.join(dir, f))) ? dir : undefined;
  if (fs.existsSync(path.join(dir, SINGLE_WEIGHTS))) return dir;
  const onnx = findOnnxModel(dir);
  return onnx && onnxExternalFiles(onnx).every((f) => fs.existsSync(path.join(path.dirname(onnx), f))) ? dir : undefined;
}

function shardFiles(indexPath: string): string[] {
  const index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as { weight_map?: Record<string, string> };
  return [...new Set(Object.values(index.weight_map ?? {}))];
}

class SnapshotFetcher {
  constructor(
    private readonly source: HubSource,
    private readonly repo: HubCacheRepo,
    private readonly commit: string,
    private readonly onProgress?: DownloadProgress,
  ) {}

  /** Returns false for an optional file the repository does not have. */
  async file(file: string, required: boolean, known?: FileMetadata): Promise<boolean> {
    // Top-level files, and one folder down for onnx/ (never .. or absolute).
    if (!/^([\w-]+\/)?[\w.-]+$/.test(file) || file.split('/').some((part) => part === '..' || part === '.')) throw new HubError('protocol', `${this.source.repoId}: refusing file name ${JSON.stringify(file)}`);
    if (this.repo.hasFile(this.commit, file)) return true;
    if (!required && this.repo.isKnownMissing(this.commit, file)) return false;
    let meta = known;
    if (!meta) {
      try {
        // Later files at the commit the first one named, so one snapshot never mixes two commits.
        meta = await fileMetadata(this.source, this.commit, file);
      } catch (err) {
        if (required || !(err instanceof HubError) || err.kind !== 'not_found') throw err;
        this.repo.markMissing(this.commit, file);
        return false;
      }
    }
    await downloadBlob(this.source, this.repo, file, meta, this.onProgress);
    this.repo.linkBlob(this.commit, file, meta.etag);
    return true;
  }
}

function resolveUrl(source: HubSource, revision: string, file: string): string {
  return `${source.endpoint}/${source.repoId}/resolve/${encodeURIComponent(revision)}/${file}`;
}

function authHeaders(source: HubSource, url: string): Record<string, string> {
  // The token goes to the hub only, never to the CDN a file is redirected to.
  return source.token && new URL(url).origin === new URL(source.endpoint).origin ? { authorization: `Bearer ${source.token}` } : {};
}

async function request(source: HubSource, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, headers: { ...authHeaders(source, url), 'accept-encoding': 'identity', ...(init.headers as Record<string, string>) } });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HubError('unreachable', `the hub at ${source.endpoint} could not be reached (${cause?.code ?? cause?.message ?? (err as Error).message})`);
  }
}

async function fileMetadata(source: HubSource, revision: string, file: string): Promise<FileMetadata> {
  let url = resolveUrl(source, revision, file);
  for (let hop = 0; ; hop++) {
    const res = await request(source, url, { method: 'HEAD', redirect: 'manual' });
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location && isRelative(location) && hop < MAX_RELATIVE_REDIRECTS) {
      url = new URL(location, url).toString();
      continue;
    }
    if (res.status >= 400) throw statusError(source, res, file, revision);
    const commit = res.headers.get('x-repo-commit');
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (!commit || !etag) {
      throw new HubError('protocol', `${url}: the answer has no ${commit ? 'ETag' : 'X-Repo-Commit'} header; is ${source.endpoint} a Hugging Face hub?`);
    }
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length') ?? NaN);
    const redirected = res.status >= 300 && res.status < 400 && location;
    // Not redirected: fetched at the commit, so a branch that moves between HEAD and GET cannot mix versions.
    const downloadUrl = redirected ? new URL(location, url).toString() : url.replace(`/resolve/${encodeURIComponent(revision)}/`, `/resolve/${commit}/`);
    return { commit, etag, size: Number.isFinite(size) ? size : undefined, downloadUrl };
  }
}

const isRelative = (location: string): boolean => !/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('//');

/** ETag: "abc" or W/"abc" -> abc (huggingface_hub's _normalize_etag). */
function normalizeEtag(etag: string | null): string | undefined {
  return etag ? etag.replace(/^W\//, '').replace(/^"|"$/g, '') : undefined;
}

/** The hub's answer as a message that says what to do (X-Error-Code: RepoNotFound, GatedRepo, EntryNotFound, RevisionNotFound). */
function statusError(source: HubSource, res: Response, file: string, revision: string): HubError {
  const code = res.headers.get('x-error-code');
  const detail = res.headers.get('x-error-message');
  const repo = `${source.endpoint}/${source.repoId}`;
  const suffix = `(HTTP ${res.status}${code ? ` ${code}` : ''}${detail ? `: ${detail}` : ''})`;
  if (code === 'GatedRepo' || ((res.status === 401 || res.status === 403) && code !== 'RepoNotFound')) {
    const token = source.token ? 'HF_TOKEN is set but not granted access: accept the conditions on the model page with that account' : 'set HF_TOKEN to a token of an account that has access';
    return new HubError('unauthorized', `${repo} is gated or private ${suffix}; ${token}`);
  }
  if (code === 'RepoNotFound') {
    return new HubError('not_found', `${repo} does not exist ${suffix}${source.token ? '' : '; if it is private, set HF_TOKEN'}`);
  }
  if (res.status === 404) {
    const what = code === 'RevisionNotFound' ? `has no revision ${revision}` : `has no file ${file} at ${revision}`;
    return new HubError('not_found', `${repo} ${what} ${suffix}`);
  }
  return new HubError('protocol', `${resolveUrl(source, revision, file)}: ${suffix}`);
}

async function downloadBlob(source: HubSource, repo: HubCacheRepo, file: string, meta: FileMetadata, onProgress?: DownloadProgress): Promise<void> {
  const blob = repo.blobPath(meta.etag);
  const present = (): boolean => fs.existsSync(blob) && (meta.size === undefined || fs.statSync(blob).size === meta.size);
  if (present()) return;
  fs.mkdirSync(repo.blobsDir, { recursive: true });
  // Replicas sharing one cache volume take turns; whoever comes second finds the blob there.
  await withFileLock(repo.lockPath(meta.etag), async () => {
    if (!present()) await transferVerified(source, blob, file, meta, onProgress);
  });
}

async function transferVerified(source: HubSource, blob: string, file: string, meta: FileMetadata, onProgress?: DownloadProgress): Promise<void> {
  const incomplete = `${blob}.incomplete`;
  let corruptSeen = false;
  for (let attempt = 1; ; attempt++) {
    let cut: string | undefined;
    try {
      await transfer(source, meta, incomplete, (bytes) => onProgress?.(file, bytes, meta.size));
    } catch (err) {
      if (!(err instanceof TransferCut)) throw err;
      cut = err.message;
    }
    if (cut !== undefined) {
      if (attempt < TRANSFER_ATTEMPTS) continue;
      throw new HubError('unreachable', `${file}: ${cut} after ${TRANSFER_ATTEMPTS} attempts; run again to resume from ${incomplete}`);
    }
    const problem = await verify(incomplete, meta);
    if (!problem) break;
    fs.rmSync(incomplete, { force: true });
    // One fresh transfer after a corrupt one; a second corrupt copy is the source's fault, not the line's.
    if (corruptSeen) throw new HubError('corrupt', `${file} from ${meta.downloadUrl}: ${problem}, twice; nothing was kept`);
    corruptSeen = true;
  }
  fs.renameSync(incomplete, blob);
}

class TransferCut extends Error {}

// A lock whose holder stopped refreshing it this long ago died with it (a killed pod).
const LOCK_STALE_MS = 60_000;
const LOCK_POLL_MS = 200;

/** An exclusive-create lock file, refreshed while held: it works across processes and across machines sharing a volume. */
async function withFileLock(lockPath: string, body: () => Promise<void>): Promise<void> {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  let fd: number;
  for (;;) {
    try {
      fd = fs.openSync(lockPath, 'wx');
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const age = Date.now() - (fs.statSync(lockPath, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
      if (age > LOCK_STALE_MS) fs.rmSync(lockPath, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
    }
  }
  const heartbeat = setInterval(() => fs.futimesSync(fd, new Date(), new Date()), LOCK_STALE_MS / 4);
  try {
    await body();
  } finally {
    clearInterval(heartbeat);
    fs.closeSync(fd);
    fs.rmSync(lockPath, { force: true });
  }
}

/** Appends the missing bytes to `incomplete` (Range from its size), restarting when the server cannot resume. */
async function transfer(source: HubSource, meta: FileMetadata, incomplete: string, onBytes: (bytes: number) => void): Promise<void> {
  let have = fs.existsSync(incomplete) ? fs.statSync(incomplete).size : 0;
  if (meta.size !== undefined && have > meta.size) have = 0;
  if (meta.size !== undefined && have === meta.size) return;
  const res = await request(source, meta.downloadUrl, { headers: have > 0 ? { range: `bytes=${have}-` } : {} }).catch((err: HubError) => {
    throw new TransferCut(err.message);
  });
  if (res.status === 416) {
    fs.rmSync(incomplete, { force: true });
    throw new TransferCut('the server refused to resume (HTTP 416)');
  }
  if (!res.ok || !res.body) throw new HubError('protocol', `${meta.downloadUrl}: HTTP ${res.status}`);
  // A 200 to a Range request is the whole file again.
  if (res.status !== 206) have = 0;
  let bytes = have;
  onBytes(bytes);
  const counted = Readable.fromWeb(res.body as WebReadableStream<Uint8Array>).on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    onBytes(bytes);
  });
  try {
    await pipeline(counted, fs.createWriteStream(incomplete, { flags: have > 0 ? 'a' : 'w' }));
  } catch (err) {
    throw new TransferCut(`the connection was cut at ${bytes}${meta.size === undefined ? '' : ` of ${meta.size}`} bytes (${(err as Error).message})`);
  }
  if (meta.size !== undefined && bytes < meta.size) throw new TransferCut(`the transfer ended at ${bytes} of ${meta.size} bytes`);
}

/** Size, then the content hash the ETag names (sha256 for LFS files, git's blob sha1 otherwise). */
async function verify(file: string, meta: FileMetadata): Promise<string | undefined> {
  const size = fs.statSync(file).size;
  if (meta.size !== undefined && size !== meta.size) return `${size} bytes where the hub says ${meta.size}`;
  return (await fileDigestMatches(file, meta.etag, size)) ? undefined : `content does not match its hash ${meta.etag}`;
}

/** Plain files (hard links where the file system allows, else copies) of a snapshot in `outDir`, like huggingface-cli --local-dir. */
export function placeSnapshot(snapshotDir: string, outDir: string): void {
  fs.mkdirSync(outDir, { recursive: true });
  for (const entry of fs.readdirSync(snapshotDir, { withFileTypes: true })) {
    const from = path.join(snapshotDir, entry.name);
    const target = path.join(outDir, entry.name);
    // Snapshot folders (onnx/) are real folders; only files are links.
    if (entry.isDirectory()) {
      placeSnapshot(from, target);
      continue;
    }
    if (fs.existsSync(target)) continue;
    const real = fs.realpathSync(from);
    try {
      fs.linkSync(real, target);
    } catch {
      fs.copyFileSync(real, target);
    }
  }
}
